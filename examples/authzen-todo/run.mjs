#!/usr/bin/env node
// The AuthZEN interop "Todo" scenario, end to end, in one command:
//
//   node examples/authzen-todo/run.mjs        (or: npm run example:todo)
//
// Starts a scratch Gatehouse in a temporary folder (gatehouse init, apply -f todo.yaml, token,
// serve), asks its PDP every question of the scenario over HTTP as the Todo backend (the PEP)
// would — single evaluations and one batch — prints what it asked, what it expected and what it
// got, and exits 0 when every answer is the expected one, 1 otherwise. The server is stopped and
// the folder removed whatever happens (Ctrl-C included). Plain Node: no dependencies, no build.

/* global fetch -- Node's built-in fetch (Node 18 and later); the ESLint config declares no globals for .mjs */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'packages/server/bin/gatehouse.js');
const CONFIG = join(ROOT, 'examples/authzen-todo/todo.yaml');
const DOMAIN = 'todo';
const PEP = 'todo.app';
const READY_TIMEOUT_MS = 30_000;

// The scenario's people (todo.yaml): the email the PEP names them by, the subject id the interop's
// identity provider gives them (an external id in Gatehouse), and one todo each, owned by them.
const USERS = {
  rick: {
    email: 'rick@the-citadel.com',
    pid: 'CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs',
    todo: '7240d0db-8ff0-41ec-98b2-34a096273b92',
  },
  morty: {
    email: 'morty@the-citadel.com',
    pid: 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs',
    todo: '7240d0db-8ff0-41ec-98b2-34a096273b91',
  },
  summer: {
    email: 'summer@the-smiths.com',
    pid: 'CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs',
    todo: '7240d0db-8ff0-41ec-98b2-34a096273b93',
  },
  beth: {
    email: 'beth@the-smiths.com',
    pid: 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs',
    todo: '7240d0db-8ff0-41ec-98b2-34a096273b94',
  },
  jerry: {
    email: 'jerry@the-smiths.com',
    pid: 'CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs',
    todo: '7240d0db-8ff0-41ec-98b2-34a096273b95',
  },
};

// The answers the interop expects (its decisions.json), written out rather than derived from the
// policy: Rick is admin and evil_genius, Morty and Summer editors, Beth and Jerry viewers. "own" is
// a todo the user owns, "other" someone else's.
const EXPECTED_TABLE = `
           can_read_user  can_read_todos  can_create_todo  update_own  update_other  delete_own  delete_other
  rick     yes            yes             yes              yes         yes           yes         yes
  morty    yes            yes             yes              yes         no            yes         no
  summer   yes            yes             yes              yes         no            yes         no
  beth     yes            yes             no               no          no            no          no
  jerry    yes            yes             no               no          no            no          no
`;
/** EXPECTED.morty.update_other === false, and so on. */
const EXPECTED = (() => {
  const [header, ...rows] = EXPECTED_TABLE.trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/));
  return Object.fromEntries(
    rows.map(([user, ...cells]) => [user, Object.fromEntries(cells.map((c, i) => [header[i], c === 'yes']))]),
  );
})();

const names = Object.keys(USERS);
const say = (line = '') => process.stdout.write(`${line}\n`);
const indent = (text) =>
  text
    .trimEnd()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => `    ${l}`)
    .join('\n');

// ---- cleaning up --------------------------------------------------------------------------------

let tmp;
let server;
const running = new Set();

/** Stops the server (SIGTERM, then SIGKILL after 10 s) and any command still running; removes the folder. */
async function cleanUp() {
  for (const child of running) child.kill('SIGTERM');
  if (server !== undefined && server.exitCode === null && server.signalCode === null) {
    say(`• Stopping the server (pid ${server.pid})`);
    const exited = new Promise((res) => server.once('exit', res));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (tmp !== undefined) {
    rmSync(tmp, { recursive: true, force: true });
    say(`• Removed ${tmp}`);
    tmp = undefined;
  }
}

let stopping = false;
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say(`\n${signal}: stopping`);
    cleanUp().finally(() => process.exit(code));
  });
}
// Last resort when the process ends some other way: nothing may outlive it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  server?.kill('SIGKILL');
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

// ---- the gatehouse command line -----------------------------------------------------------------

/** The environment of every gatehouse command: ours only, so a GATEHOUSE_* of the caller's shell
 * (GATEHOUSE_SERVER, GATEHOUSE_DATABASE_URL, …) can never point this run at a real server. */
function environment(port) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return {
    ...env,
    GATEHOUSE_DATABASE_URL: `sqlite:${join(tmp, 'gatehouse.db')}`,
    GATEHOUSE_PORT: String(port),
    GATEHOUSE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    GATEHOUSE_ADMIN_PASSWORD: randomBytes(18).toString('base64url'),
    GATEHOUSE_LOG_LEVEL: 'warn',
  };
}

/** Runs `gatehouse ARGS…` to the end; resolves with its output, rejects when it fails. */
function gatehouse(args, env) {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => {
      running.delete(child);
      if (code === 0) res({ stdout, stderr });
      else
        rej(new Error(`gatehouse ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${indent(stderr + stdout)}`));
    });
  });
}

/** A TCP port nobody listens on right now. */
function freePort() {
  return new Promise((res, rej) => {
    const probe = createServer();
    probe.once('error', rej);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => res(port));
    });
  });
}

/** Starts `gatehouse serve` and waits until GET /readyz answers 200. */
async function serve(env, baseUrl) {
  const started = Date.now();
  // Its own process group: a Ctrl-C reaches this script only, which then stops the server once.
  server = spawn(process.execPath, [CLI, 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    windowsHide: true,
  });
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  while (Date.now() - started < READY_TIMEOUT_MS) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`the server stopped before it was ready:\n${indent(log)}`);
    }
    try {
      const r = await fetch(`${baseUrl}/readyz`);
      if (r.status === 200) return Date.now() - started;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the server was not ready after ${READY_TIMEOUT_MS / 1000} s:\n${indent(log)}`);
}

// ---- the scenario -------------------------------------------------------------------------------

/** An AuthZEN resource: a todo owned by `owner` (its ownerID sent as a property), or a user. */
const todoOf = (owner) => ({ type: 'todo', id: USERS[owner].todo, properties: { ownerID: USERS[owner].email } });
const userResource = (name) => ({ type: 'user', id: USERS[name].email });
const newTodo = { type: 'todo', id: 'todo-1' };
/** The evaluation request of a case, as the PEP sends it. */
const request = (c) => ({ subject: c.subject, action: { name: c.action }, resource: c.resource });

/** Every user × every action, on their own todo and on someone else's; users named by email. */
function singleCases() {
  const cases = [];
  names.forEach((name, i) => {
    const e = EXPECTED[name];
    const next = names[(i + 1) % names.length];
    const other = name === 'rick' ? 'morty' : 'rick';
    const subject = { type: 'user', id: USERS[name].email };
    const add = (action, resource, expected) => cases.push({ user: name, subject, action, resource, expected });
    add('can_read_user', userResource(next), e.can_read_user);
    add('can_read_todos', newTodo, e.can_read_todos);
    add('can_create_todo', newTodo, e.can_create_todo);
    add('can_update_todo', todoOf(name), e.update_own);
    add('can_update_todo', todoOf(other), e.update_other);
    add('can_delete_todo', todoOf(name), e.delete_own);
    add('can_delete_todo', todoOf(other), e.delete_other);
  });
  return cases;
}

/** What the Todo list asks for Morty — may he edit, may he delete each todo? — in one request,
 * Morty named by the subject id the interop's identity provider gives him. */
function batchCases() {
  const subject = { type: 'user', id: USERS.morty.pid };
  const e = EXPECTED.morty;
  const cases = [];
  for (const owner of names) {
    const own = owner === 'morty';
    const add = (action, expected) => cases.push({ user: 'morty', subject, action, resource: todoOf(owner), expected });
    add('can_update_todo', own ? e.update_own : e.update_other);
    add('can_delete_todo', own ? e.delete_own : e.delete_other);
  }
  return { subject, cases };
}

/** POSTs `body` as the PEP; resolves with the status and the parsed body. */
async function post(url, token, body) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json };
}

/** What a response answered, as the table shows it: true, false, or the error. */
function answer(status, body) {
  if (status === 200 && typeof body?.decision === 'boolean') return body.decision;
  return `HTTP ${status} ${body?.code ?? ''}`.trim();
}

function describeResource(resource) {
  if (resource.type === 'user') return `user ${resource.id}`;
  const owner = resource.properties?.ownerID;
  if (owner === undefined) return `todo ${resource.id}`;
  return `todo …${resource.id.slice(-4)} of ${names.find((n) => USERS[n].email === owner)}`;
}

function printTable(rows) {
  const table = [
    ['#', 'via', 'user', 'action', 'resource', 'expected', 'got', ''],
    ...rows.map((r, i) => [
      String(i + 1),
      r.via,
      r.user,
      r.action,
      describeResource(r.resource),
      String(r.expected),
      String(r.got),
      r.got === r.expected ? 'ok' : 'MISMATCH',
    ]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]))
      .join('  ')
      .trimEnd();
  say(`  ${line(table[0])}`);
  say(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`.trimEnd());
  for (const row of table.slice(1)) say(`  ${line(row)}`);
}

async function main() {
  say('The AuthZEN interop "Todo" scenario against a scratch Gatehouse');
  say('');
  tmp = mkdtempSync(join(tmpdir(), 'gatehouse-todo-'));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = environment(port);
  say(`• Temporary folder ${tmp}, server at ${baseUrl}`);

  say('• gatehouse init');
  const init = await gatehouse(['init'], env);
  say(indent(init.stdout));

  say(`• gatehouse apply -f ${relative(ROOT, CONFIG)}`);
  const apply = await gatehouse(['apply', '-f', CONFIG], env);
  say(indent(apply.stdout));

  say(`• gatehouse token --subject ${PEP} --audience pdp   (the PEP's decision API token)`);
  const token = (await gatehouse(['token', '--subject', PEP, '--audience', 'pdp', '--ttl', '600'], env)).stdout.trim();
  say(`    ${token.slice(0, 24)}… (${token.length} characters)`);

  say('• gatehouse serve');
  const ms = await serve(env, baseUrl);
  say(`    ready in ${(ms / 1000).toFixed(1)} s`);

  const metadataUrl = `${baseUrl}/.well-known/authzen-configuration/pdp/${DOMAIN}`;
  say(`• PDP metadata: GET ${metadataUrl}`);
  const metadata = await fetch(metadataUrl);
  if (metadata.status !== 200) throw new Error(`the PDP metadata answered HTTP ${metadata.status}`);
  const pdp = await metadata.json();
  // A PEP discards metadata that names another PDP than the one it asked about (AuthZEN 1.0).
  if (pdp.policy_decision_point !== `${baseUrl}/pdp/${DOMAIN}`) {
    throw new Error(`the PDP metadata names another PDP: ${pdp.policy_decision_point}`);
  }
  say(indent(JSON.stringify(pdp, null, 2)));

  const rows = [];
  const singles = singleCases();
  say(`• ${singles.length} evaluations, one request each: POST ${pdp.access_evaluation_endpoint}`);
  say(`    users named by email, such as ${JSON.stringify(request(singles[3]))}`);
  for (const c of singles) {
    const r = await post(pdp.access_evaluation_endpoint, token, request(c));
    rows.push({ ...c, via: 'single', got: answer(r.status, r.body) });
  }

  const batch = batchCases();
  say(`• ${batch.cases.length} evaluations in one request: POST ${pdp.access_evaluations_endpoint}`);
  say(`    Morty's todo list: may he update, may he delete each todo? He is named by his IdP subject id`);
  say(`    (${batch.subject.id}), the top-level subject of every item.`);
  const r = await post(pdp.access_evaluations_endpoint, token, {
    subject: batch.subject,
    evaluations: batch.cases.map((c) => ({ action: { name: c.action }, resource: c.resource })),
  });
  const answers = r.status === 200 && Array.isArray(r.body?.evaluations) ? r.body.evaluations : [];
  batch.cases.forEach((c, i) => {
    const a = answers[i];
    const got = a !== undefined ? answer(200, a) : r.status === 200 ? 'no answer' : answer(r.status, r.body);
    rows.push({ ...c, via: 'batch', got });
  });

  say('');
  printTable(rows);
  say('');
  const good = rows.filter((row) => row.got === row.expected).length;
  if (good === rows.length) {
    say(`Summary: ${good} of ${rows.length} decisions as expected.`);
    return 0;
  }
  say(`Summary: ${good} of ${rows.length} decisions as expected; ${rows.length - good} MISMATCH.`);
  return 1;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  say('');
  say(`Failed: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
} finally {
  if (!stopping) await cleanUp();
}
if (!stopping) process.exit(exitCode);
