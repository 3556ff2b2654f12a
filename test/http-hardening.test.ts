/**
 * Bad input gets a clear 4xx, never a 500 or a stack trace, and nothing is left half-written;
 * every page carries strict security headers.
 */
import test from 'ava';

import { openLoginForm } from './helpers/login-form.ts';
import { authorizationRequest, discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';
import type * as oidc from 'openid-client';

let server: TestServer;
let config: oidc.Configuration;

test.before(async () => {
  server = await startTestServer({ clients: [staticClient()] });
  config = await discover(server.issuer);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

function assertNoLeak(t: { notRegex(value: string, pattern: RegExp, message?: string): void }, body: string) {
  t.notRegex(body, /\n\s+at [\w.<>]+ \(|node_modules|\.ts:\d+/, 'no stack trace or source path');
}

test('interaction pages send a strict CSP without inline scripts, deny framing and send no referrer', async (t) => {
  const { page } = await openLoginForm(server);
  t.is(page.status, 200);
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /default-src 'self'/);
  t.regex(csp, /script-src 'self'(;|$)/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  t.regex(csp, /frame-ancestors 'none'/);
  t.is(page.headers.get('referrer-policy'), 'no-referrer');
  t.is(page.headers.get('x-frame-options'), 'DENY');
  t.is(page.headers.get('x-content-type-options'), 'nosniff');
  t.is(page.headers.get('strict-transport-security'), null, 'no HSTS over plain http');
  // Only Tessera's own script files (the passkey button); the forms work without them (browser.test.ts).
  t.notRegex(page.body, /<script(?![^>]*\ssrc="\/assets\/[\w-]+\.js")/i, 'no inline script');
  t.regex(page.body, /<label for="email">/);
  t.regex(page.body, /name="_csrf"/);
});

test('protocol endpoints answer JSON with the API set of security headers: nothing may load or frame it, no sniffing, no referrer', async (t) => {
  const answers = [
    await fetch(`${server.url}/.well-known/openid-configuration`),
    await fetch(`${server.url}/jwks`),
    await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' }),
  ];
  for (const response of answers) {
    const what = `${response.url} (${response.status})`;
    t.regex(response.headers.get('content-type') ?? '', /^application\/(jwk-set\+)?json/, what);
    t.is(response.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'", what);
    t.is(response.headers.get('x-content-type-options'), 'nosniff', what);
    t.is(response.headers.get('x-frame-options'), 'DENY', what);
    t.is(response.headers.get('referrer-policy'), 'no-referrer', what);
    t.is(response.headers.get('cross-origin-opener-policy'), null, `${what}: no document-only headers`);
  }
});

test('HSTS is sent when Tessera is served over https behind a declared TLS proxy', async (t) => {
  // Outside production, BEHIND_TLS_PROXY without TRUSTED_PROXIES trusts a proxy on loopback.
  const behindProxy = await startTestServer({ env: { BEHIND_TLS_PROXY: 'true', ISSUER: 'https://id.example.test' } });
  t.teardown(async () => {
    await behindProxy.close();
    removeDir(behindProxy.dataDir);
  });
  const response = await fetch(`${behindProxy.url}/.well-known/openid-configuration`, { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.test' } });
  t.is(response.status, 200);
  t.regex(response.headers.get('strict-transport-security') ?? '', /max-age=\d{7,}/);
});

test('a sign-in form posted without or with a wrong CSRF token is refused with 403 and a readable page', async (t) => {
  const { agent, action, fields } = await openLoginForm(server);
  const { _csrf: _token, ...withoutToken } = fields;
  for (const form of [withoutToken, { ...fields, _csrf: 'forged' }]) {
    const page = await agent.request(action, { form: { ...form, email: 'a@example.com', password: 'whatever password' } });
    t.is(page.status, 403);
    t.regex(page.body, /This form expired or did not come from this site/);
    assertNoLeak(t, page.body);
  }
});

test('a registration posted with a wrong CSRF token creates no account', async (t) => {
  const { agent, action, fields } = await openLoginForm(server);
  const person = newPerson();
  const page = await agent.request(action.replace(/\/login$/, '/register'), {
    form: { ...fields, _csrf: 'forged', email: person.email, password: person.password, password_confirmation: person.password },
  });
  t.is(page.status, 403);
  t.is(await server.withServices((services) => services.accounts.findByEmail(person.email)), undefined);
});

test('a CSRF token from another browser is refused', async (t) => {
  const mine = await openLoginForm(server);
  const theirs = await openLoginForm(server);
  const page = await mine.agent.request(mine.action, { form: { ...mine.fields, _csrf: theirs.fields._csrf!, email: 'a@example.com', password: 'x'.repeat(12) } });
  t.is(page.status, 403);
});

test('registration refuses bad input with a clear message and writes nothing', async (t) => {
  const person = newPerson();
  const cases: Array<[Record<string, string>, number, RegExp]> = [
    [{ email: 'not-an-email', password: person.password, password_confirmation: person.password }, 400, /Enter a valid email address/],
    [{ email: person.email, password: 'short', password_confirmation: 'short' }, 400, /at least 12 characters/],
    [{ email: person.email, password: person.password, password_confirmation: 'something else entirely' }, 400, /do not match/],
    [{ email: person.email, password: 'p'.repeat(300), password_confirmation: 'p'.repeat(300) }, 400, /limited to 256 characters/],
    [{ email: person.email, password: person.password, password_confirmation: person.password, name: 'n'.repeat(101) }, 400, /limited to 100 characters/],
  ];
  for (const [values, status, message] of cases) {
    const { agent, action, fields } = await openLoginForm(server);
    const page = await agent.request(action.replace(/\/login$/, '/register'), { form: { ...fields, ...values } });
    t.is(page.status, status, JSON.stringify(values).slice(0, 80));
    t.regex(page.body, message);
    assertNoLeak(t, page.body);
  }
  t.is(await server.withServices((services) => services.accounts.findByEmail(person.email)), undefined);
});

test('registering an email that already has an account is refused with 409 and keeps the first account', async (t) => {
  const person = newPerson();
  await signIn(config, new UserAgent(), person, { register: true });
  const before = await server.withServices((services) => services.accounts.findByEmail(person.email));
  const { agent, action, fields } = await openLoginForm(server);
  const page = await agent.request(action.replace(/\/login$/, '/register'), {
    form: { ...fields, email: person.email.toUpperCase(), password: 'another long password', password_confirmation: 'another long password' },
  });
  t.is(page.status, 409);
  t.regex(page.body, /already exists/);
  const after = await server.withServices((services) => services.accounts.findByEmail(person.email));
  t.is(after?.passwordHash, before?.passwordHash);
});

test('an oversized form post is refused with 413', async (t) => {
  const { agent, action, fields } = await openLoginForm(server);
  const page = await agent.request(action, { form: { ...fields, email: 'a@example.com', password: 'x'.repeat(64 * 1024) } });
  t.is(page.status, 413);
  assertNoLeak(t, page.body);
});

test('repeated or odd form fields are treated as invalid input, not as a server error', async (t) => {
  const { agent, action, fields } = await openLoginForm(server);
  const body = new URLSearchParams({ ...fields });
  body.append('email', 'a@example.com');
  body.append('email', 'b@example.com');
  body.append('password', 'whatever password');
  body.append('password[$gt]', '');
  const cookie = await agent.request(action.replace(/\/login$/, ''));
  t.is(cookie.status, 200);
  const response = await agent.request(action, { form: Object.fromEntries(body) });
  t.true(response.status === 401 || response.status === 400, String(response.status));
});

test('an unknown or expired interaction shows a readable 400 page', async (t) => {
  const agent = new UserAgent();
  const page = await agent.request(`${server.url}/interaction/does-not-exist`);
  t.is(page.status, 400);
  t.regex(page.body, /expired/);
  const post = await agent.request(`${server.url}/interaction/does-not-exist/login`, { form: { _csrf: 'x', email: 'a', password: 'b' } });
  t.true(post.status === 400 || post.status === 403);
  assertNoLeak(t, post.body);
});

test('the token endpoint answers malformed requests with OAuth errors, never 500', async (t) => {
  const basic = `Basic ${btoa('test-rp:test-rp-secret-with-plenty-of-entropy-0123456789')}`;
  const attempts: Array<{ headers: Record<string, string>; body: string }> = [
    { headers: { 'content-type': 'application/json', authorization: basic }, body: '{"grant_type":' },
    { headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic }, body: 'grant_type=authorization_code&code=nope&redirect_uri=x&code_verifier=y' },
    { headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic !!!' }, body: 'grant_type=refresh_token&refresh_token=x' },
    { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_id=${'a'.repeat(5000)}` },
    { headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic }, body: 'a'.repeat(200 * 1024) },
  ];
  for (const attempt of attempts) {
    const response = await fetch(`${server.issuer}/token`, { method: 'POST', ...attempt });
    t.true(response.status >= 400 && response.status < 500, `${response.status} for ${attempt.body.slice(0, 40)}`);
    const text = await response.text();
    assertNoLeak(t, text);
  }
});

test('unknown paths get a 404 page, and a JSON 404 for API callers', async (t) => {
  const html = await fetch(`${server.url}/nope`, { headers: { accept: 'text/html' } });
  t.is(html.status, 404);
  t.regex(await html.text(), /nothing at this address/);
  const json = await fetch(`${server.url}/nope`, { headers: { accept: 'application/json' } });
  t.is(json.status, 404);
  t.is(((await json.json()) as { error: string }).error, 'not_found');
});

test('authorization requests with hostile parameters never cause a 5xx', async (t) => {
  const hostile = ['%00', '<script>alert(1)</script>', '"><img src=x>', 'a'.repeat(4000), '\u202e\u0000', '{"$gt":""}', '../../etc/passwd'];
  for (const value of hostile) {
    for (const name of ['client_id', 'redirect_uri', 'scope', 'state', 'response_type', 'prompt', 'max_age', 'code_challenge', 'claims', 'id_token_hint']) {
      const request = await authorizationRequest(config, { [name]: value });
      const response = await fetch(request.url, { redirect: 'manual' });
      t.true(response.status < 500, `${name}=${value.slice(0, 20)} gave ${response.status}`);
      const body = await response.text();
      t.false(body.includes('<script>alert(1)</script>'), 'reflected input is escaped');
    }
  }
});
