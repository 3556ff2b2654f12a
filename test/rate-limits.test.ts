/**
 * Rate limits through the real surface: 429 with Retry-After on sign-in, registration, password
 * reset requests and failed token requests; counted in the store, so two instances share a count;
 * the client address decided by TRUSTED_PROXIES, never by a header from anyone.
 */
import { BlockList } from 'node:net';
import type { Socket } from 'node:net';

import test from 'ava';
import * as oidc from 'openid-client';

import { addressKey, clientAddress } from '../src/http/rate-limit.ts';
import { startInstancePair, type StoreKind } from './helpers/instance-pair.ts';
import { attemptSignIn, openLoginForm, postLogin } from './helpers/login-form.ts';
import { newPerson, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

const API = 'https://orders.example.com';
const RP_SECRET = String(staticClient().client_secret);

async function started(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string>): Promise<TestServer> {
  const server = await startTestServer({ clients: [staticClient()], env });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  return server;
}

function retryAfter(page: { headers: Headers }): number {
  return Number(page.headers.get('retry-after'));
}

function assertTooMany(t: { is(a: unknown, b: unknown, m?: string): void; true(v: boolean, m?: string): void; regex(s: string, r: RegExp, m?: string): void }, page: Page, windowSeconds: number) {
  t.is(page.status, 429);
  const seconds = retryAfter(page);
  t.true(Number.isInteger(seconds) && seconds >= 1 && seconds <= windowSeconds, `Retry-After: ${page.headers.get('retry-after')}`);
  t.regex(page.body, /Too many attempts\. Try again in \d+ (seconds?|minutes?)\./);
}

function fakeContext(remoteAddress: string, forwardedFor?: string) {
  return {
    req: { socket: { remoteAddress } as Socket },
    get: (name: string) => (name.toLowerCase() === 'x-forwarded-for' ? forwardedFor ?? '' : ''),
  } as unknown as Parameters<typeof clientAddress>[0];
}

test('the client address is the peer, unless the peer is a trusted proxy', (t) => {
  const proxies = new BlockList();
  proxies.addSubnet('10.0.0.0', 8, 'ipv4');
  t.is(clientAddress(fakeContext('203.0.113.9', '198.51.100.1'), proxies), '203.0.113.9', 'a header from anyone else is ignored');
  t.is(clientAddress(fakeContext('::ffff:10.1.2.3', '198.51.100.1'), proxies), '198.51.100.1');
  t.is(clientAddress(fakeContext('10.1.2.3', '1.2.3.4, 198.51.100.1, 10.0.0.7'), proxies), '198.51.100.1', 'read from the right, skipping trusted hops: the first entry is the client\'s to forge');
  t.is(clientAddress(fakeContext('10.1.2.3', '198.51.100.1:5123'), proxies), '198.51.100.1', 'a port some proxies add is dropped');
  t.is(clientAddress(fakeContext('10.1.2.3', '[2001:db8::7]:443'), proxies), '2001:db8::7');
  t.is(clientAddress(fakeContext('10.1.2.3', 'garbage'), proxies), '10.1.2.3');
  t.is(clientAddress(fakeContext('10.1.2.3'), proxies), '10.1.2.3');
});

test('IPv6 addresses count by /64, IPv4 addresses one by one', (t) => {
  t.is(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.is(addressKey('::1'), '0:0:0:0::/64');
  t.is(addressKey('192.0.2.1'), '192.0.2.1');
});

test('asking for passwordless passkey options counts against the sign-in limit per address, with 429 and Retry-After', async (t) => {
  const server = await started(t, { RATE_LIMIT_SIGNIN_PER_IP: '3/60' });
  const form = await openLoginForm(server);
  const optionsUrl = form.action.replace(/\/login$/, '/passkey/options');
  const ask = () => form.agent.request(optionsUrl, { form: { _csrf: form.fields._csrf! }, headers: { Accept: 'application/json' } });
  for (let i = 0; i < 3; i += 1) {
    const answer = await ask();
    t.is(answer.status, 200, answer.body);
    t.truthy((JSON.parse(answer.body) as { challenge?: string }).challenge);
  }
  const refused = await ask();
  t.is(refused.status, 429, refused.body);
  t.true(retryAfter(refused) >= 1 && retryAfter(refused) <= 60);
  t.is((await attemptSignIn(server, 'someone@example.com', 'some wrong password')).status, 429, 'one count with the password sign-in posts of that address');
});

for (const kind of ['sqlite', 'mongodb'] as StoreKind[]) {
  test(`on ${kind}, sign-in attempts for one account count across two instances and the fourth gets 429`, async (t) => {
    const pair = await startInstancePair(kind, { RATE_LIMIT_SIGNIN_PER_ACCOUNT: '3/60' });
    t.teardown(() => pair.close());
    const email = `limited.${Date.now()}@example.com`;
    for (const server of [pair.a, pair.b, pair.a]) {
      t.is((await attemptSignIn(server, email, 'some wrong password')).status, 401);
    }
    const refused = await attemptSignIn(pair.b, email, 'some wrong password');
    assertTooMany(t, refused, 60);
    t.notRegex(refused.body, /Invalid email or password/);
    // Letter case and spaces do not make another account.
    assertTooMany(t, await attemptSignIn(pair.a, `  ${email.toUpperCase()}`, 'x'.repeat(12)), 60);
    t.is((await attemptSignIn(pair.a, `other.${email}`, 'some wrong password')).status, 401, 'other accounts are not affected');
  });

  test(`on ${kind}, failed token requests count across two instances, per client and per address`, async (t) => {
    const pair = await startInstancePair(kind, { RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '3/60', RATE_LIMIT_TOKEN_FAILURES_PER_IP: '6/60' });
    t.teardown(() => pair.close());
    const token = (server: TestServer, secret: string) => fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${btoa(`test-rp:${secret}`)}` },
      body: 'grant_type=authorization_code&code=nope&redirect_uri=http%3A%2F%2Flocalhost%3A9%2Fcallback&code_verifier=' + 'a'.repeat(43),
    });
    for (const server of [pair.a, pair.b, pair.a]) t.is((await token(server, 'wrong secret')).status, 401);
    const blocked = await token(pair.b, RP_SECRET);
    t.is(blocked.status, 429, 'blocked before the (right) secret is even checked');
    const seconds = Number(blocked.headers.get('retry-after'));
    t.true(seconds >= 1 && seconds <= 60);
    t.deepEqual(await blocked.json(), { error: 'invalid_request', error_description: `too many failed requests; retry after ${seconds} seconds` });
    t.is(blocked.headers.get('www-authenticate'), null);

    // Unknown clients count per address only: three more failures reach the address's six.
    for (const server of [pair.a, pair.b, pair.a]) {
      const response = await fetch(`${server.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&client_id=nobody&client_secret=x' });
      t.is(response.status, 401);
    }
    const address = await fetch(`${pair.b.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&client_id=someone-else&client_secret=x' });
    t.is(address.status, 429);
    t.truthy(address.headers.get('retry-after'));
  });
}

test('registration attempts from one address get 429 once over the limit', async (t) => {
  const server = await started(t, { RATE_LIMIT_REGISTRATION_PER_IP: '2/60' });
  const register = async (values: Record<string, string>) => {
    const { agent, action, fields } = await openLoginForm(server);
    return agent.request(action.replace(/\/login$/, '/register'), { form: { ...fields, ...values } });
  };
  const person = newPerson();
  t.is((await register({ email: person.email, password: 'short', password_confirmation: 'short' })).status, 400, 'refused attempts count too');
  t.is((await register({ email: person.email, password: person.password, password_confirmation: person.password })).status, 303);
  const other = newPerson();
  assertTooMany(t, await register({ email: other.email, password: other.password, password_confirmation: other.password }), 60);
  t.is(await server.withServices(({ accounts }) => accounts.findByEmail(other.email)), undefined, 'nothing was created');
});

test('password reset requests get 429 per email and per address, whether the account exists or not', async (t) => {
  const server = await started(t, { RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT: '2/60', RATE_LIMIT_PASSWORD_RESET_PER_IP: '4/60' });
  const agent = new UserAgent();
  const ask = async (email: string) => {
    const page = await agent.request(`${server.url}/password/forgot`);
    const form = readForm(page.body, '/password/forgot');
    return agent.request(`${server.url}/password/forgot`, { form: { ...form.fields, email } });
  };
  const unknown = `nobody.${Date.now()}@example.com`;
  t.is((await ask(unknown)).status, 303);
  t.is((await ask(unknown.toUpperCase())).status, 303);
  assertTooMany(t, await ask(unknown), 60);
  t.is((await ask(`second.${unknown}`)).status, 303, 'another email has its own count');
  assertTooMany(t, await ask(`third.${unknown}`), 60);
});

test('behind a trusted proxy each forwarded client has its own count; from anyone else the header changes nothing', async (t) => {
  const env = { RATE_LIMIT_SIGNIN_PER_IP: '2/60' };
  const proxied = await started(t, { ...env, TRUSTED_PROXIES: '127.0.0.1,::1' });
  const attempt = async (server: TestServer, forwardedFor: string) => postLogin(await openLoginForm(server), 'someone@example.com', 'a wrong password', { 'x-forwarded-for': forwardedFor });
  t.is((await attempt(proxied, '198.51.100.1')).status, 401);
  t.is((await attempt(proxied, '198.51.100.1')).status, 401);
  t.is((await attempt(proxied, '198.51.100.1')).status, 429);
  t.is((await attempt(proxied, '198.51.100.2')).status, 401, 'another client behind the proxy');

  const direct = await started(t, env);
  t.is((await attempt(direct, '198.51.100.1')).status, 401);
  t.is((await attempt(direct, '198.51.100.2')).status, 401);
  t.is((await attempt(direct, '198.51.100.3')).status, 429, 'a forged X-Forwarded-For from an untrusted peer does not reset the count');
});

test('a 429 page answers JSON to JSON callers and never counts a successful token request', async (t) => {
  const server = await started(t, { RATE_LIMIT_SIGNIN_PER_ACCOUNT: '1/60', RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '2/60', RATE_LIMIT_TOKEN_FAILURES_PER_IP: '2/60' });
  const email = `json.${Date.now()}@example.com`;
  await attemptSignIn(server, email, 'a wrong password');
  const form = await openLoginForm(server);
  const json = await postLogin(form, email, 'a wrong password', { accept: 'application/json' });
  t.is(json.status, 429);
  t.truthy(json.headers.get('retry-after'));
  t.like(JSON.parse(json.body), { error: 'rate_limited' });

  const created = await server.withServices(async ({ resources, clients }) => {
    await resources.create({ audience: API, scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300 });
    return clients.createMachineClient({ name: 'busy-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } });
  });
  const config = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.ClientSecretBasic(created.client_secret!), { execute: [oidc.allowInsecureRequests] });
  for (let i = 0; i < 10; i += 1) {
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read' });
    t.truthy(tokens.access_token);
  }
});
