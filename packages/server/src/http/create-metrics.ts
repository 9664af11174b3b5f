/**
 * Prometheus metrics of one app, in a registry of its own (so that two apps in one process — as in
 * the tests — never share counters): process defaults, HTTP requests by route pattern, decisions
 * and store errors. Labels are bounded: routes are patterns (`/v1/domains/:domain`), never URLs.
 */

import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** The metrics of an app (`app.metrics`); other code counts decisions and store errors through it. */
export interface GatehouseMetrics {
  readonly registry: Registry;
  /** gatehouse_http_requests_total{method,route,status} */
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  /** gatehouse_http_request_duration_seconds{method,route} */
  readonly httpRequestDuration: Histogram<'method' | 'route'>;
  /** gatehouse_decisions_total{domain,decision}, decision = allow | deny */
  readonly decisions: Counter<'domain' | 'decision'>;
  /** gatehouse_store_errors_total{operation} */
  readonly storeErrors: Counter<'operation'>;
  /** Counts `count` (default 1) decisions of `domain`: `true` is allow, `false` deny. */
  countDecision(domain: string, decision: boolean, count?: number): void;
  /** Counts one failed store operation, such as `createRole`. */
  countStoreError(operation: string): void;
}

/** Options of createMetrics. */
export interface CreateMetricsOptions {
  /** Collect the default process metrics (CPU, memory, event loop, GC); default true. */
  processMetrics?: boolean;
}

// Decisions are answered in microseconds to milliseconds; management writes in tens of milliseconds.
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Creates the metrics and their registry. */
export function createMetrics(options: CreateMetricsOptions = {}): GatehouseMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const httpRequests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const httpRequestDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time to answer HTTP requests, by method and route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const decisions = new Counter({
    name: 'gatehouse_decisions_total',
    help: 'Authorization decisions answered, by domain and decision (allow or deny)',
    labelNames: ['domain', 'decision'] as const,
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'gatehouse_store_errors_total',
    help: 'Store operations that failed unexpectedly, by operation',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  return {
    registry,
    httpRequests,
    httpRequestDuration,
    decisions,
    storeErrors,
    countDecision(domain, decision, count = 1) {
      if (count > 0) decisions.inc({ domain, decision: decision ? 'allow' : 'deny' }, count);
    },
    countStoreError(operation) {
      storeErrors.inc({ operation });
    },
  };
}
