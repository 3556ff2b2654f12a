/**
 * One error model: each AppErrorCode has one status and one `error` name (the table in
 * src/errors.ts), and every surface answers from it: the pages, the admin API and the registration
 * API, which is declared on the admin API's route-table machinery and so has an OpenAPI document.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { REGISTRATION_ROUTES, registrationApiDocument } from '../src/api/registration.ts';
import { AppError, ERROR_TABLE, errorAnswer, STORE_RETRY_AFTER_SECONDS, type AppErrorCode } from '../src/errors.ts';
import { runCliJson } from './helpers/cli.ts';
import { staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

// --- The table (pure logic) ---

test('every code answers with the status and error name of its table entry, and shows its message only when exposed', (t) => {
  for (const code of Object.keys(ERROR_TABLE) as AppErrorCode[]) {
    const meaning = ERROR_TABLE[code];
    const error = new AppError(code, 'the details');
    t.is(error.status, meaning.status, code);
    const answer = errorAnswer(error);
    t.is(answer.status, meaning.status, code);
    t.is(answer.body.error, meaning.oauthError, code);
    t.is(answer.body.error_description, meaning.expose ? 'the details' : meaning.publicText ?? 'no public text', code);
    t.is(answer.headers['Retry-After'] as string | undefined, meaning.retryAfterSeconds === undefined ? undefined : String(meaning.retryAfterSeconds), code);
  }
});

test('a store outage is 503 temporarily_unavailable with Retry-After, whether Tessera or oidc-provider raised it', (t) => {
  for (const caught of [new AppError('ERR_STORE_UNAVAILABLE', 'mongo at 10.0.0.5 timed out'), Object.assign(new Error('adapter'), { status: 503, error: 'temporarily_unavailable' })]) {
    const answer = errorAnswer(caught);
    t.is(answer.status, 503);
    t.is(answer.headers['Retry-After'], String(STORE_RETRY_AFTER_SECONDS));
    t.is(answer.body.error, 'temporarily_unavailable');
    t.notRegex(answer.body.error_description, /mongo|10\.0\.0\.5/, 'no details of the store');
    t.is(answer.log, 'warn');
  }
});

test('a body parser\'s refusals keep their status, and anything unexpected is a plain 500 that goes to the log', (t) => {
  const tooLarge = errorAnswer(Object.assign(new Error('request entity too large'), { status: 413, expose: true }), { bodyLimit: '16kb' });
  t.like(tooLarge, { status: 413, body: { error: 'request_too_large', error_description: 'The body is limited to 16kb' }, log: undefined });
  const malformed = errorAnswer(Object.assign(new Error('Unexpected token'), { status: 400, expose: true, type: 'entity.parse.failed' }));
  t.like(malformed, { status: 400, body: { error: 'invalid_request', error_description: 'The body is not valid JSON' } });
  const bug = errorAnswer(new TypeError('cannot read properties of undefined (reading "sub")'));
  t.deepEqual(bug.body, { error: 'server_error', error_description: 'Something went wrong on our side. Please try again.' });
  t.is(bug.status, 500);
  t.is(bug.log, 'error');
});

test('a rate limit is 429 with its own window as Retry-After', (t) => {
  const answer = errorAnswer(new AppError('ERR_RATE_LIMITED', 'Too many attempts.', { retryAfterSeconds: 42 }));
  t.like(answer, { status: 429, headers: { 'Retry-After': '42' }, body: { error: 'rate_limited' } });
});

// --- Through the real surfaces ---

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
let server: TestServer;
let adminToken: string;

test.before(async () => {
  server = await startTestServer({
    clients: [staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true })],
  });
  const admin = `${server.issuer}/admin/api`;
  const robot = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', admin, '--scope', 'admin', '--role', 'admin']);
  const config = await oidc.discovery(new URL(server.issuer), robot.client_id, {}, oidc.ClientSecretBasic(robot.client_secret), { execute: [oidc.allowInsecureRequests] });
  adminToken = (await oidc.clientCredentialsGrant(config, { resource: admin, scope: 'admin' })).access_token;
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

async function answerOf(response: Response) {
  return { status: response.status, retryAfter: response.headers.get('retry-after'), cacheControl: response.headers.get('cache-control'), body: await response.json() as Record<string, unknown> };
}

test('the registration API publishes an OpenAPI document made from its route table', async (t) => {
  const response = await fetch(`${server.issuer}/api/openapi.json`);
  t.is(response.status, 200);
  const document = await response.json() as { openapi: string; servers: Array<{ url: string }>; paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>> };
  t.deepEqual(document, JSON.parse(JSON.stringify(registrationApiDocument(server.issuer))));
  t.is(document.openapi, '3.1.0');
  t.is(document.servers[0]!.url, `${server.issuer}/api`);
  for (const route of REGISTRATION_ROUTES) t.is(document.paths[route.path]?.[route.method]?.operationId, route.operationId);
  t.deepEqual(Object.keys(document.paths['/accounts']!.post!.responses).sort(), ['201', '400', '401', '409', '413', '415', '429', '503']);

  const post = await fetch(`${server.issuer}/api/openapi.json`, { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
});

test('the admin API and the registration API answer the same refusal with the same status, headers and body', async (t) => {
  const registration = (headers: Record<string, string>, body: string) => fetch(`${server.issuer}/api/accounts`, {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}`, ...headers },
    body,
  });
  const admin = (headers: Record<string, string>, body: string) => fetch(`${server.issuer}/admin/api/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, ...headers },
    body,
  });
  const refusals: Array<[string, Record<string, string>, string]> = [
    ['not JSON', { 'content-type': 'text/plain' }, 'hello'],
    ['malformed JSON', { 'content-type': 'application/json' }, '{"email": '],
    ['not an object', { 'content-type': 'application/json' }, '[1, 2]'],
  ];
  for (const [what, headers, body] of refusals) {
    const fromRegistration = await answerOf(await registration(headers, body));
    const fromAdmin = await answerOf(await admin(headers, body));
    t.true(fromRegistration.status >= 400 && fromRegistration.status < 500, what);
    t.deepEqual(fromRegistration, fromAdmin, what);
  }
});
