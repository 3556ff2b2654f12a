/**
 * Size limits on what a request may carry, enforced before any of it reaches Tessera's code:
 * request headers (Node's 16 KiB in all, and at most 100 of them), and bodies, per endpoint.
 */
import http from 'node:http';

import test from 'ava';

import { staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
let server: TestServer;

test.before(async () => {
  server = await startTestServer({
    clients: [staticClient(), staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true })],
  });
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

/** A raw request (fetch would refuse some of these headers), answered or cut off. */
function rawRequest(options: { path: string; method?: string; headers?: Record<string, string | string[]>; body?: string }): Promise<{ status: number; body: string }> {
  const url = new URL(options.path, server.url);
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false, timeout: 10_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 10 s')));
    request.on('error', reject);
    request.end(options.body);
  });
}

test('request headers over 16 KiB in all are refused with 431, whichever endpoint', async (t) => {
  for (const path of ['/healthz', '/token', '/auth', '/interaction/x']) {
    const answer = await rawRequest({ path, headers: { 'x-filler': 'a'.repeat(17 * 1024) } });
    t.is(answer.status, 431, path);
  }
  const cookie = await rawRequest({ path: '/', headers: { cookie: `_session=${'b'.repeat(20 * 1024)}` } });
  t.is(cookie.status, 431, 'a huge cookie too');
});

test('more than 100 request headers are refused with 431; fewer pass', async (t) => {
  const headers = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`x-header-${index}`, 'x']));
  t.is((await rawRequest({ path: '/healthz', headers: headers(90) })).status, 200);
  t.is((await rawRequest({ path: '/healthz', headers: headers(150) })).status, 431);
});

test('bodies over each endpoint\'s limit are refused before they are parsed', async (t) => {
  const json = await rawRequest({
    path: '/api/accounts',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` },
    body: JSON.stringify({ email: 'a@example.com', password: 'p'.repeat(20 * 1024) }),
  });
  t.is(json.status, 413, json.body);
  const token = await rawRequest({
    path: '/token',
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=client_credentials&filler=${'a'.repeat(2 * 1024 * 1024)}`,
  });
  // oidc-provider's own limit (56 kB) answers in OAuth's error shape.
  t.is(token.status, 400, token.body);
  t.regex(token.body, /"error":"invalid_request"/);
});
