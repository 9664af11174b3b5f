/**
 * Input validation for the stores of users, resources, services, APIs and clients: every check
 * adds an issue `{ path, code, message }` (paths relative to the input object, `redirectUris[1]`)
 * instead of stopping at the first, and `throwIfAny` throws them all as one ValidationError.
 */

import { NAME_LIMITS, type ModelIssue } from '@gatehouse/engine';
import { canonicalJson } from './canonical-json.js';
import { ValidationError } from './store.js';

// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/** One label of a name (semantics.md "Names"). */
export const LABEL = /^[a-z0-9_][a-z0-9_-]*$/;

/** Options of IssueCollector.text. */
export interface TextRule {
  /** The issue code when the text breaks a rule. */
  code: string;
  /** At most this many characters. */
  max: number;
  /** At least this many characters (default 1). */
  min?: number;
  /** Refuse white space too, not only control characters. */
  noSpace?: boolean;
}

/** Collects validation issues; throws them together. */
export class IssueCollector {
  readonly issues: ModelIssue[] = [];

  /** Adds one issue. */
  add(path: string, code: string, message: string): void {
    this.issues.push({ path, code, message });
  }

  /** True when no issue has been added. */
  get ok(): boolean {
    return this.issues.length === 0;
  }

  /** Throws a ValidationError with every issue, when there is any. */
  throwIfAny(): void {
    if (this.issues.length > 0) throw new ValidationError(this.issues);
  }

  /**
   * Checks a text field: a string of `min`..`max` characters without control characters (nor
   * white space with `noSpace`). Returns the text, or undefined after adding an issue.
   */
  text(value: unknown, path: string, rule: TextRule): string | undefined {
    const min = rule.min ?? 1;
    if (typeof value !== 'string') {
      this.add(path, rule.code, `${path} must be a string`);
      return undefined;
    }
    if (value.length < min) {
      this.add(
        path,
        rule.code,
        min === 1 ? `${path} is empty` : `${path} is ${value.length} characters; at least ${min} are needed`,
      );
      return undefined;
    }
    if (value.length > rule.max) {
      this.add(path, rule.code, `${path} is ${value.length} characters; at most ${rule.max} are allowed`);
      return undefined;
    }
    if (CONTROL.test(value) || (rule.noSpace === true && /\s/.test(value))) {
      this.add(
        path,
        rule.code,
        `${path} contains ${rule.noSpace === true ? 'white space or ' : ''}a control character`,
      );
      return undefined;
    }
    return value;
  }

  /**
   * Checks a list field: an array of at most `max` items. Returns the array, or undefined after
   * adding an issue.
   */
  list(value: unknown, path: string, code: string, max: number): unknown[] | undefined {
    if (!Array.isArray(value)) {
      this.add(path, code, `${path} must be a list`);
      return undefined;
    }
    if (value.length > max) {
      this.add(path, code, `${path} has ${value.length} items; at most ${max} are allowed`);
      return undefined;
    }
    return value;
  }

  /**
   * Checks a one-label name (a service, an API, a resource type): lower-cased, at most
   * NAME_LIMITS.label characters of [a-z0-9_][a-z0-9_-]*. Returns it lower-cased, or undefined
   * after adding an issue.
   */
  label(value: unknown, path: string, code: string, what: string): string | undefined {
    const name = this.text(typeof value === 'string' ? value.toLowerCase() : value, path, {
      code,
      max: NAME_LIMITS.label,
    });
    if (name === undefined) return undefined;
    if (!LABEL.test(name)) {
      this.add(path, code, `${what} "${name}" must match [a-z0-9_][a-z0-9_-]* (one label, no dots)`);
      return undefined;
    }
    return name;
  }

  /** Checks a boolean field. Returns it, or undefined after adding an issue. */
  boolean(value: unknown, path: string, code: string): boolean | undefined {
    if (typeof value !== 'boolean') {
      this.add(path, code, `${path} must be true or false`);
      return undefined;
    }
    return value;
  }

  /**
   * Checks a JSON object field (attributes, properties): a plain object that JSON can hold, at
   * most `maxChars` characters as canonical JSON. Returns it, or undefined after adding an issue.
   */
  jsonObject(value: unknown, path: string, code: string, maxChars: number): Record<string, unknown> | undefined {
    if (!isPlainObject(value)) {
      this.add(path, code, `${path} must be an object`);
      return undefined;
    }
    let json: string;
    try {
      json = canonicalJson(value);
    } catch (err) {
      this.add(path, code, `${path} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    if (json.length > maxChars) {
      this.add(path, code, `${path} is ${json.length} characters as JSON; at most ${maxChars} are allowed`);
      return undefined;
    }
    return JSON.parse(json) as Record<string, unknown>;
  }
}

/** True for `{…}` objects (not arrays, not class instances, not null). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
