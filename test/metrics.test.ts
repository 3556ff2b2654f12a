/**
 * /healthz, /readyz and /metrics through the real server: after a scripted sequence of sign-ins
 * (successes, failures, a lockout, an attempt while locked) and token requests, the Prometheus
 * counters hold exactly those numbers; latency is labelled by route name, never by URL; /metrics
 * asks for METRICS_TOKEN when one is set and is not served in production without one.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import test from 'ava';
import Koa from 'koa';
import * as oidc from 'openid-client';

import { observabilityEndpoints } from '../src/observability/endpoints.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { attemptSignIn } from './helpers/login-form.ts';
import { discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer, workersReady, type LogLine } from './helpers/spawned-server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const API = 'https://api.example.com';
const PASSWORD = 'correct horse battery staple';
const WRONG = 'not the right password at all';

async function start(t: import('ava').ExecutionContext, env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer({ clients: [staticClient()], env });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  return server;
}

/** Sample lines as `name{labels}` -> value; label order as the server wrote it. */
function samples(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const index = line.lastIndexOf(' ');
    values.set(line.slice(0, index), Number(line.slice(index + 1)));
  }
  return values;
}

test('after a scripted sequence of sign-ins and token requests, /metrics holds exactly those counts', async (t) => {
  const server = await start(t, { LOCKOUT_THRESHOLD: '2' });
  const alice = { ...newPerson(), password: PASSWORD };
  const bob = newPerson();
  const machine = await server.withServices(async ({ accounts, resources, clients }) => {
    await accounts.register({ email: alice.email, password: PASSWORD });
    await accounts.register({ email: bob.email, password: PASSWORD });
    await resources.create({ audience: API, scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300 });
    return clients.createMachineClient({ name: 'metrics-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } });
  });

  // Three complete sign-ins, each ending in a code exchange at the token endpoint.
  const rp = await discover(server.issuer);
  for (let i = 0; i < 3; i += 1) await signIn(rp, new UserAgent(), alice);
  // Two wrong passwords lock bob (threshold 2); the right one while locked is refused as "locked".
  for (let i = 0; i < 2; i += 1) t.is((await attemptSignIn(server, bob.email, WRONG)).status, 401);
  t.is((await attemptSignIn(server, bob.email, PASSWORD)).status, 401);
  // Four machine tokens.
  const service = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret!), { execute: [oidc.allowInsecureRequests] });
  for (let i = 0; i < 4; i += 1) await oidc.clientCredentialsGrant(service, { scope: 'orders:read' });

  const response = await fetch(`${server.url}/metrics`);
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const values = samples(text);
  t.is(values.get('tessera_sign_ins_total{result="success"}'), 3);
  t.is(values.get('tessera_sign_ins_total{result="failure"}'), 2);
  t.is(values.get('tessera_sign_ins_total{result="locked"}'), 1);
  t.is(values.get('tessera_lockouts_total'), 1);
  t.is(values.get(`tessera_tokens_issued_total{grant_type="authorization_code",client_id="test-rp"}`), 3);
  t.is(values.get(`tessera_tokens_issued_total{grant_type="client_credentials",client_id="${machine.client_id}"}`), 4);
  t.is(values.get('tessera_http_request_duration_seconds_count{route="token",status="2xx"}'), 7);
  t.is(values.get('tessera_http_request_duration_seconds_count{route="/interaction/:uid/login",status="4xx"}'), 3);
  t.true((values.get('tessera_http_request_duration_seconds_count{route="authorization",status="3xx"}') ?? 0) >= 6);
  // Default process metrics are there too.
  t.true(values.has('process_cpu_user_seconds_total'));
  t.true([...values.keys()].some((key) => key.startsWith('nodejs_heap_size_used_bytes')));

  // Route labels are names and patterns: no interaction uid, no query string, one series per route.
  const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((match) => match[1]!));
  for (const route of routes) t.regex(route, /^(?:[a-z_]+|\/[a-z/:.*_-]*)$/i, route);
  t.false([...routes].some((route) => /\/interaction\/(?!:uid)/.test(route)), [...routes].join(' '));
});

test('/healthz and /readyz answer 200 on a healthy server; neither is cached', async (t) => {
  const server = await start(t);
  const health = await fetch(`${server.url}/healthz`);
  t.is(health.status, 200);
  t.deepEqual(await health.json(), { status: 'ok' });
  const ready = await fetch(`${server.url}/readyz`);
  t.is(ready.status, 200);
  t.is(ready.headers.get('cache-control'), 'no-store');
  t.deepEqual(await ready.json(), { status: 'ready', checks: { store: 'ok', keys: 'ok' } });
});

test('with METRICS_TOKEN, /metrics answers 401 without the bearer token or with a wrong one, 200 with it', async (t) => {
  const token = 'metrics-token-0123456789abcdef';
  const server = await start(t, { METRICS_TOKEN: token });
  const without = await fetch(`${server.url}/metrics`);
  t.is(without.status, 401);
  t.is(without.headers.get('www-authenticate'), 'Bearer realm="metrics"');
  t.is((await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}x` } })).status, 401);
  t.is((await fetch(`${server.url}/metrics`, { headers: { authorization: `Basic ${btoa(`x:${token}`)}` } })).status, 401);
  const withToken = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  t.is(withToken.status, 200);
  t.regex(await withToken.text(), /^# HELP /m);
});

test('in production without METRICS_TOKEN, /metrics is not served; /healthz and /readyz still are', async (t) => {
  const server = await start(t, { NODE_ENV: 'production', TESSERA_SECRET: 'a-production-secret-of-at-least-32-characters', BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '127.0.0.1' });
  t.is((await fetch(`${server.url}/metrics`)).status, 404);
  t.is((await fetch(`${server.url}/healthz`)).status, 200);
  t.is((await fetch(`${server.url}/readyz`)).status, 200);
});

test('/readyz answers 503 with Retry-After when the store fails or does not answer in time, and 200 again once it does', async (t) => {
  let store: 'up' | 'down' | 'hanging' = 'down';
  const app = new Koa();
  app.use(observabilityEndpoints({
    metrics: new Metrics({ defaultMetrics: false }),
    ping: () => store === 'up' ? Promise.resolve() : store === 'down' ? Promise.reject(new Error('refused')) : new Promise(() => undefined),
    keysLoaded: () => true,
    metricsToken: undefined,
    production: false,
  }));
  const listener = http.createServer(app.callback()).listen(0);
  t.teardown(() => listener.close());
  await new Promise((resolve) => listener.once('listening', resolve));
  const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/readyz`;

  const down = await fetch(url);
  t.is(down.status, 503);
  t.is(down.headers.get('retry-after'), '5');
  t.deepEqual(await down.json(), { status: 'not_ready', checks: { store: 'unreachable', keys: 'ok' } });

  store = 'hanging';
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const started = Date.now();
  t.is((await fetch(url)).status, 503);
  t.true(Date.now() - started < 2000, 'a hanging store answers within the timeout');

  store = 'up';
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.is((await fetch(url)).status, 200);
});

/** A GET on a connection of its own, so the cluster's primary hands each to the next worker. */
function getOnNewConnection(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url} within 5 s`)));
    request.on('error', reject);
  });
}

test('with WORKERS=2, a scrape reaching either worker counts the requests of both', async (t) => {
  const dataDir = makeTempDir();
  const server = spawnServer({ dataDir, env: { WORKERS: '2' } });
  t.teardown(() => {
    killIfRunning(server);
    removeDir(dataDir);
  });
  const url = await listeningUrl(server);
  await workersReady(server, 2);

  for (let i = 0; i < 20; i += 1) t.is((await getOnNewConnection(`${url}/healthz`)).status, 200);
  // Access lines are written in batches (log.ts): wait for all twenty.
  const healthz = (line: LogLine) => line.msg === 'request' && line.route === '/healthz';
  await server.waitForLine(() => server.lines.filter(healthz).length >= 20, 'twenty /healthz access lines', 5000);
  const served = new Set(server.lines.filter(healthz).map((line) => line.pid));
  t.is(served.size, 2, 'both workers answered some of them');
  for (let i = 0; i < 4; i += 1) {
    const scrape = await getOnNewConnection(`${url}/metrics`);
    t.is(scrape.status, 200);
    t.is(samples(scrape.body).get('tessera_http_request_duration_seconds_count{route="/healthz",status="2xx"}'), 20);
  }
});
