/**
 * Nothing secret reaches the log. One server logs at the most verbose level into memory while real
 * flows run against it: password sign-ins (right and wrong), the authorization code exchange, a
 * refresh, introspection and revocation, client_credentials with a secret, the account page (whose
 * callback carries a code in the query string), a password reset (whose link carries a token in the
 * query string). Then the whole log is searched for every secret those flows used: passwords, client
 * secrets, codes, access, refresh and ID tokens, the reset token. None may appear; every request has
 * an access line with its request id, and lines written while handling a request carry that id.
 */
import { Writable } from 'node:stream';

import test from 'ava';
import * as oidc from 'openid-client';

import { accessLogWriter, createLogger, redact } from '../src/log.ts';
import { runInRequest } from '../src/request-context.ts';
import { attemptSignIn } from './helpers/login-form.ts';
import { linkIn, startMailCatcher } from './helpers/mail-catcher.ts';
import { discover, newPerson, signIn, staticClient, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

const API = 'https://api.example.com';
const NOWHERE = 'never:';

interface LogLine {
  level: number;
  msg?: string;
  requestId?: string;
  method?: string;
  route?: string;
  path?: string;
  status?: number;
  ms?: number;
  [key: string]: unknown;
}

test('no password, client secret, code or token of real flows appears in the log, and every request line carries its request id', async (t) => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const mail = await startMailCatcher();
  const rpClient = staticClient();
  const server = await startTestServer({ clients: [rpClient], env: { LOG_LEVEL: 'trace', SMTP_URL: mail.url }, logDestination: destination });
  t.teardown(async () => {
    await server.close();
    await mail.close();
    removeDir(server.dataDir);
  });

  const secrets = new Map<string, string>();
  const keep = (label: string, value: string | undefined) => {
    if (value) secrets.set(label, value);
  };
  const person = newPerson();
  keep('password', person.password);
  keep('client secret of the RP', String(rpClient.client_secret));
  const machine = await server.withServices(async ({ accounts, resources, clients }) => {
    await accounts.register({ email: person.email, password: person.password });
    await resources.create({ audience: API, scopes: ['orders:read'], format: 'opaque', ttlSeconds: 300 });
    return clients.createMachineClient({ name: 'redaction-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } });
  });
  keep('client secret of the machine client', machine.client_secret);

  // A wrong password, then the authorization code flow with the right one.
  const wrong = 'a wrong password that must stay out of logs';
  keep('wrong password', wrong);
  t.is((await attemptSignIn(server, person.email, wrong)).status, 401);
  const rp = await discover(server.issuer, rpClient);
  const { tokens, callback } = await signIn(rp, new UserAgent(), person);
  keep('authorization code', callback.searchParams.get('code') ?? undefined);
  keep('access token', tokens.access_token);
  keep('refresh token', tokens.refresh_token);
  keep('ID token', tokens.id_token);

  // Refresh, introspection, revocation.
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
  keep('refreshed access token', refreshed.access_token);
  keep('refreshed refresh token', refreshed.refresh_token);
  keep('refreshed ID token', refreshed.id_token);
  t.true((await oidc.tokenIntrospection(rp, refreshed.access_token)).active);
  await oidc.tokenRevocation(rp, refreshed.refresh_token!);

  // client_credentials with a secret, and a wrong secret.
  const service = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret!), { execute: [oidc.allowInsecureRequests] });
  const machineToken = await oidc.clientCredentialsGrant(service, { scope: 'orders:read', resource: API });
  keep('client_credentials access token', machineToken.access_token);
  const wrongSecret = 'not-the-secret-but-still-secret-0123456789';
  keep('wrong client secret', wrongSecret);
  const refused = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`${machine.client_id}:${wrongSecret}`)}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=orders%3Aread',
  });
  t.is(refused.status, 401);

  // The account page: Tessera's own client, whose callback carries the code in the query string.
  const browser = new UserAgent();
  const login = await browser.follow(`${server.issuer}/account`, NOWHERE);
  const form = readForm(login.body, '/login');
  const afterLogin = await browser.request(new URL(form.action, login.url).href, { form: { ...form.fields, email: person.email, password: person.password } });
  let page = afterLogin;
  for (let hops = 0; hops < 10 && page.status >= 300 && page.status < 400; hops += 1) {
    const next = new URL(page.headers.get('location')!, page.url).href;
    const code = new URL(next).pathname === '/account/callback' ? new URL(next).searchParams.get('code') : null;
    if (code) keep('account page code', code);
    page = await browser.request(next);
  }
  t.is(page.status, 200);
  t.true(secrets.has('account page code'));

  // A password reset: the link carries its token in the query string.
  const resetBrowser = new UserAgent();
  const forgotPage = await resetBrowser.request(`${server.issuer}/password/forgot`);
  t.is(forgotPage.status, 200);
  await submit(resetBrowser, forgotPage, '/password/forgot', { email: person.email }, NOWHERE);
  const message = await mail.waitFor((caught) => caught.to === person.email && caught.subject === 'Reset your password');
  const link = linkIn(message, `${server.issuer}/password/reset?token=`);
  keep('reset token', new URL(link).searchParams.get('token') ?? undefined);
  const resetForm = await resetBrowser.request(link);
  const newPassword = 'a brand new passphrase nobody may read';
  keep('new password', newPassword);
  const done = await submit(resetBrowser, resetForm, '/password/reset', { password: newPassword, password_confirmation: newPassword }, NOWHERE);
  t.is(done.status, 200);

  // Query strings that look like credentials, on any path, and a request id of our choosing.
  keep('code in a query string', 'query-code-0123456789abcdefghij');
  keep('token in a query string', 'query-token-0123456789abcdefghij');
  const mine = 'redaction-test-request-0001';
  const probe = await fetch(`${server.url}/healthz?code=query-code-0123456789abcdefghij&token=query-token-0123456789abcdefghij`, { headers: { 'x-request-id': mine } });
  t.is(probe.headers.get('x-request-id'), mine);

  // Everything is logged synchronously; the whole log is read once the flows are done.
  t.true(secrets.size >= 18, [...secrets.keys()].join(', '));
  const log = lines.join('\n');
  for (const [label, secret] of secrets) {
    t.false(log.includes(secret), `the ${label} appears in the log`);
    // Also not percent- or form-encoded, as it would sit in a URL or a body.
    t.false(log.includes(encodeURIComponent(secret)), `the ${label} appears URL-encoded in the log`);
  }

  const parsed = lines.map((line) => JSON.parse(line) as LogLine);
  const access = parsed.filter((line) => line.msg === 'request');
  t.true(access.length > 30, `${access.length} access lines`);
  for (const line of access) {
    t.regex(String(line.requestId), /^[\w.-]{1,64}$/);
    t.false(String(line.path).includes('?'), String(line.path));
    t.is(typeof line.status, 'number');
    t.is(typeof line.ms, 'number');
    t.is(typeof line.route, 'string');
  }
  const probeLine = access.find((line) => line.requestId === mine);
  t.like(probeLine, { method: 'GET', route: '/healthz', path: '/healthz', status: 200 });
  // Lines written by the code handling a request carry that request's id, like its access line.
  const failure = parsed.find((line) => line.msg === 'sign-in failed');
  t.truthy(failure?.requestId);
  t.true(access.some((line) => line.requestId === failure?.requestId && line.route === '/interaction/:uid/login' && line.status === 401));
  // Lines outside any request (startup) have none.
  t.is(parsed.find((line) => String(line.msg).startsWith('Tessera is listening'))?.requestId, undefined);
});

test('redact censors secret keys at any depth, keeps an error\'s code, message and stack, and never changes what it was given', (t) => {
  const error = Object.assign(new Error('the store said no'), { code: 'ERR_STORE_UNAVAILABLE', token: 'abc' });
  const given = {
    sub: 'sub-1',
    password: 'hunter2 hunter2',
    params: { code: 'an-authorization-code', scope: 'openid', nested: { refresh_token: 'rt', deeper: { client_secret: 'cs' } } },
    list: [{ access_token: 'at' }, 'plain'],
    headers: { authorization: 'Bearer x', cookie: 'a=b', accept: 'text/html' },
    err: error,
    at: new Date(0),
  };
  const snapshot = structuredClone({ ...given, err: undefined });
  const result = redact(given);

  t.deepEqual({ ...result, err: undefined }, {
    sub: 'sub-1',
    password: '[redacted]',
    params: { code: '[redacted]', scope: 'openid', nested: { refresh_token: '[redacted]', deeper: { client_secret: '[redacted]' } } },
    list: [{ access_token: '[redacted]' }, 'plain'],
    headers: { authorization: '[redacted]', cookie: '[redacted]', accept: 'text/html' },
    err: undefined,
    at: new Date(0),
  });
  t.true(result.err instanceof Error);
  t.is(result.err.message, 'the store said no');
  t.is(result.err.stack, error.stack);
  t.is((result.err as Error & { code: string }).code, 'ERR_STORE_UNAVAILABLE');
  t.is((result.err as Error & { token: string }).token, '[redacted]');
  t.deepEqual({ ...given, err: undefined }, snapshot, 'the logged object is unchanged');
  t.is(error.token, 'abc');
  const clean = { method: 'GET', path: '/token', status: 200 };
  t.is(redact(clean), clean, 'nothing to censor: the same object, no copy');
});

test('an access line is the line pino would write for the same fields: level, bindings, request id, key order and message', (t) => {
  const written: string[] = [];
  const destination = { write: (line: string) => void written.push(line) };
  const logger = createLogger('info', destination).child({ worker: 2, pid: 1234 });
  const fields = { requestId: 'req-1', method: 'GET', route: '/interaction/:uid', path: '/interaction/"quoted"\\ü', status: 200, ms: 0.3 };
  runInRequest({ requestId: 'req-1', ip: () => '127.0.0.1' }, () => logger.info({ ...fields }, 'request'));
  accessLogWriter(logger)(fields);
  t.is(written.length, 2);
  const [byPino, byWriter] = written.map((line) => line.replace(/"time":\d+/, '"time":0'));
  t.is(byWriter, byPino);
  t.like(JSON.parse(byWriter!), { service: 'tessera', worker: 2, pid: 1234, ...fields, msg: 'request' });
  written.length = 0;
  accessLogWriter(createLogger('warn', destination))(fields);
  t.deepEqual(written, [], 'nothing below the log level');
});
