/**
 * The admin API on a real server, with real tokens: a machine client made with
 * `tessera clients create` (the CLI's own entry point) gets one by client credentials (openid-client), a person with the
 * admin role gets one by signing in through an app (the real pages). Bad tokens are made by hand,
 * each wrong in exactly one way, signed with the server's own key where that matters.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';

import { openApiDocument } from '../src/admin/openapi.ts';
import { ADMIN_ROUTES } from '../src/admin/routes.ts';
import { thumbprint } from '../src/domain/certificates.ts';
import { hashClientSecret } from '../src/domain/clients.ts';
import { createSelfSignedCertificate, type KeyAndCertificate } from '../src/domain/pki.ts';
import { runCliJson } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { pythonBcrypt } from './helpers/foreign-hashes.ts';
import { attemptSignIn } from './helpers/login-form.ts';
import { discover, newPerson, signIn, staticClient, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { request as tlsRequest } from './helpers/tls-client.ts';
import { UserAgent } from './helpers/user-agent.ts';

const CERT_HEADER = 'x-ssl-client-cert';
const PROXY = '127.0.0.2';
const CONSOLE_SECRET = 'admin-console-secret-with-plenty-of-entropy-0123';
const ORDERS = 'https://orders.example.com';

let server: TestServer;
/** `${issuer}/admin/api`: the admin API's base URL and its tokens' audience. */
let ADMIN: string;
let machine: { client_id: string; client_secret: string };
let machineConfig: oidc.Configuration;
/** An app (relying party) allowed the admin API, through which people sign in. */
let console_: oidc.Configuration;

test.before(async () => {
  server = await startTestServer({
    clients: [staticClient()],
    env: {
      CLIENT_CERT_HEADER: CERT_HEADER,
      TRUSTED_PROXIES: PROXY,
      LOCKOUT_THRESHOLD: '2',
      RATE_LIMIT_ADMIN_FAILURES_PER_IP: '100000/60',
    },
  });
  ADMIN = `${server.issuer}/admin/api`;
  machine = await runCliJson(server.cliEnv, ['clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', ADMIN, '--scope', 'admin', '--role', 'admin']);
  machineConfig = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret), { execute: [oidc.allowInsecureRequests] });
  await server.withServices(async (_services, store) => {
    await store.clients.create({
      clientId: 'admin-console',
      metadata: staticClient({ client_id: 'admin-console', client_name: 'Admin console', client_secret: hashClientSecret(CONSOLE_SECRET), tessera_resources: { [ADMIN]: ['admin'] } }),
    });
    await store.resources.create({ audience: ORDERS, scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300 });
  });
  console_ = await discover(server.issuer, staticClient({ client_id: 'admin-console', client_secret: CONSOLE_SECRET }));
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** One admin API call; every answer must be JSON (or empty for 204) and never a 5xx. */
async function api(method: string, route: string, options: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string>; on?: TestServer } = {}): Promise<Answer> {
  const token = options.token === undefined ? await machineToken() : options.token;
  const hasBody = options.body !== undefined || options.raw !== undefined;
  const response = await fetch(`${(options.on ?? server).issuer}/admin/api${route}`, {
    method,
    headers: {
      ...(token && { authorization: `Bearer ${token}` }),
      ...(hasBody && { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(hasBody && { body: options.raw ?? JSON.stringify(options.body) }),
  });
  const text = await response.text();
  if (response.status >= 500) throw new Error(`${method} ${route} answered ${response.status}: ${text}`);
  let body: Record<string, unknown> = {};
  if (response.status !== 204 && method !== 'HEAD') {
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`${method} ${route} answered ${response.status} with something other than JSON: ${text.slice(0, 300)}`);
    }
  }
  return { status: response.status, headers: response.headers, body };
}

let cachedMachineToken: { value: string; until: number } | undefined;

async function machineToken(): Promise<string> {
  if (cachedMachineToken && cachedMachineToken.until > Date.now()) return cachedMachineToken.value;
  const tokens = await oidc.clientCredentialsGrant(machineConfig, { resource: ADMIN, scope: 'admin' });
  cachedMachineToken = { value: tokens.access_token, until: Date.now() + 60_000 };
  return tokens.access_token;
}

let counter = 0;
function email(label = 'user'): string {
  counter += 1;
  return `${label}${counter}.${Date.now()}@example.com`;
}

async function registered(roles: string[] = []): Promise<Person & { sub: string }> {
  const person = newPerson();
  const answer = await api('POST', '/users', { body: { email: person.email, password: person.password, name: person.name, roles } });
  if (answer.status !== 201) throw new Error(`could not create a user: ${JSON.stringify(answer.body)}`);
  return { ...person, sub: String(answer.body.sub) };
}

async function personToken(person: Person, agent = new UserAgent()): Promise<string> {
  const { tokens } = await signIn(console_, agent, person, { parameters: { scope: 'openid admin', resource: ADMIN } });
  return tokens.access_token;
}

function items(answer: Answer): Array<Record<string, unknown>> {
  return answer.body.items as Array<Record<string, unknown>>;
}

// --- Authentication ---

test('a machine client made with clients create --role admin gets an admin token by client credentials and lists users', async (t) => {
  const tokens = await oidc.clientCredentialsGrant(machineConfig, { resource: ADMIN, scope: 'admin' });
  const claims = jose.decodeJwt(tokens.access_token);
  t.is(claims.aud, ADMIN);
  t.is(claims.scope, 'admin');
  t.is(jose.decodeProtectedHeader(tokens.access_token).typ, 'at+jwt');

  const person = await registered();
  const answer = await api('GET', '/users?limit=200', { token: tokens.access_token });
  t.is(answer.status, 200);
  t.is(answer.headers.get('cache-control'), 'no-store');
  t.is(answer.headers.get('access-control-allow-origin'), null, 'no CORS');
  t.true(items(answer).some((user) => user.sub === person.sub));
  t.false(JSON.stringify(answer.body).includes('argon2'), 'no password hash leaves');
});

test('a person with the admin role signs in through an app allowed the admin API and can use it', async (t) => {
  const admin = await registered(['admin']);
  const token = await personToken(admin);
  t.like(jose.decodeJwt(token), { aud: ADMIN, scope: 'admin', sub: admin.sub, client_id: 'admin-console' });
  const answer = await api('GET', `/users/${admin.sub}`, { token });
  t.is(answer.status, 200);
  t.like(answer.body, { sub: admin.sub, roles: ['admin'] });
});

test('a person without the admin role is not given the admin scope, and is refused with 403 insufficient_scope', async (t) => {
  const person = await registered();
  const token = await personToken(person);
  t.false(String(jose.decodeJwt(token).scope ?? '').split(' ').includes('admin'));
  const answer = await api('GET', '/users', { token });
  t.is(answer.status, 403);
  t.is(answer.body.error, 'insufficient_scope');
  t.regex(String(answer.headers.get('www-authenticate')), /^Bearer .*error="insufficient_scope"/);
});

test('the admin role is checked at every request: taken away or the account disabled, the same token stops working at once', async (t) => {
  const admin = await registered(['admin']);
  const token = await personToken(admin);
  t.is((await api('GET', '/keys', { token })).status, 200);

  t.is((await api('DELETE', `/users/${admin.sub}/roles/admin`)).status, 200);
  const withoutRole = await api('GET', '/keys', { token });
  t.is(withoutRole.status, 403);
  t.is(withoutRole.body.error, 'insufficient_scope');

  t.is((await api('PUT', `/users/${admin.sub}/roles/admin`)).status, 200);
  t.is((await api('GET', '/keys', { token })).status, 200);
  t.is((await api('PATCH', `/users/${admin.sub}`, { body: { disabled: true } })).status, 200);
  const disabled = await api('GET', '/keys', { token });
  t.is(disabled.status, 401);
  t.is(disabled.body.error, 'invalid_token');
});

test('a machine client without the admin role cannot get the admin scope', async (t) => {
  const created = await api('POST', '/clients', { body: { kind: 'machine', name: 'No role', resources: { [ADMIN]: ['admin'] } } });
  t.is(created.status, 201);
  const config = await oidc.discovery(new URL(server.issuer), String(created.body.client_id), {}, oidc.ClientSecretBasic(String(created.body.client_secret)), { execute: [oidc.allowInsecureRequests] });
  const error = await t.throwsAsync(oidc.clientCredentialsGrant(config, { resource: ADMIN, scope: 'admin' }));
  t.is((error as { error?: string }).error, 'invalid_scope');
});

/** A token as the server would sign it, with one thing changed (or left out). */
async function forged(change: { payload?: Record<string, unknown>; header?: Record<string, unknown>; key?: jose.CryptoKey; omit?: string[] } = {}): Promise<string> {
  const jwk = await server.withServices(async ({ keys }) => (await keys.material()).signingKeys.find((key) => key.kty === 'RSA')!);
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: server.issuer,
    aud: ADMIN,
    sub: machine.client_id,
    client_id: machine.client_id,
    scope: 'admin',
    jti: `forged-${now}-${Math.random()}`,
    iat: now,
    exp: now + 300,
    ...change.payload,
  };
  for (const claim of change.omit ?? []) delete payload[claim];
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid!, ...change.header })
    .sign(change.key ?? await jose.importJWK(jwk, 'RS256'));
}

test('a token signed like the server\'s is accepted, and each way of getting one wrong is refused with 401 invalid_token', async (t) => {
  t.is((await api('GET', '/keys', { token: await forged() })).status, 200, 'the forging itself is right');

  const now = Math.floor(Date.now() / 1000);
  const real = await machineToken();
  const [header, payload, signature] = real.split('.') as [string, string, string];
  const widened = Buffer.from(JSON.stringify({ ...jose.decodeJwt(real), scope: 'admin everything' })).toString('base64url');
  const { privateKey: foreignKey } = await jose.generateKeyPair('RS256');
  const reader = await api('POST', '/clients', { body: { kind: 'machine', name: 'Orders reader', resources: { [ORDERS]: ['orders:read'] } } });
  const readerConfig = await oidc.discovery(new URL(server.issuer), String(reader.body.client_id), {}, oidc.ClientSecretBasic(String(reader.body.client_secret)), { execute: [oidc.allowInsecureRequests] });
  const ordersToken = await oidc.clientCredentialsGrant(readerConfig, { resource: ORDERS });

  const cases: Array<[string, string, RegExp]> = [
    ['expired', await forged({ payload: { exp: now - 60, iat: now - 400 } }), /expired/],
    ['from another issuer', await forged({ payload: { iss: 'https://evil.example.com' } }), /issued by someone else/],
    ['for another audience (forged)', await forged({ payload: { aud: ORDERS } }), /not for the admin API/],
    ['for another audience (a real token for another API)', ordersToken.access_token, /not for the admin API/],
    ['signed by another key', await forged({ key: foreignKey }), /signature|not signed with a key/],
    ['unsigned (alg none)', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload}.`, /signature|format|algorithm/],
    ['tampered with (scope widened)', `${header}.${widened}.${signature}`, /signature/],
    ['an ID token, not an access token', await forged({ header: { typ: 'JWT' } }), /not an access token/],
    ['without an expiry', await forged({ omit: ['exp'] }), /lacks a required claim/],
    ['without a jti', await forged({ omit: ['jti'] }), /lacks a required claim/],
    ['not a JWT at all', 'not-a-token', /not a signed JWT/],
  ];
  for (const [name, token, description] of cases) {
    const answer = await api('GET', '/keys', { token });
    t.is(answer.status, 401, name);
    t.is(answer.body.error, 'invalid_token', name);
    t.regex(String(answer.body.error_description), description, name);
    t.regex(String(answer.headers.get('www-authenticate')), /^Bearer realm="tessera-admin", error="invalid_token"/, name);
  }
});

test('without a token the answer is 401 with a bare Bearer challenge; another scheme is refused', async (t) => {
  const none = await api('GET', '/users', { token: null });
  t.is(none.status, 401);
  t.is(none.headers.get('www-authenticate'), 'Bearer realm="tessera-admin", scope="admin"');
  const basic = await api('GET', '/users', { token: null, headers: { authorization: `Basic ${btoa(`${machine.client_id}:${machine.client_secret}`)}` } });
  t.is(basic.status, 401);
  t.is(basic.body.error, 'invalid_token');
  const inQuery = await api('GET', `/users?access_token=${await machineToken()}`, { token: null });
  t.is(inQuery.status, 401, 'a token in the query string is not looked at');
});

test('a certificate-bound token works only over a connection presenting that certificate', async (t) => {
  const certificate = await createSelfSignedCertificate({ subject: 'CN=ops-mtls' });
  const other = await createSelfSignedCertificate({ subject: 'CN=someone-else' });
  const created = await api('POST', '/clients', {
    body: { kind: 'machine', name: 'Ops over mTLS', auth: 'self_signed_tls_client_auth', certificates: [certificate.cert], resources: { [ADMIN]: ['admin'] }, roles: ['admin'] },
  });
  t.is(created.status, 201);
  t.like(created.body, { kind: 'machine', token_endpoint_auth_method: 'self_signed_tls_client_auth', certificate_bound: true, thumbprints: [thumbprint(new X509Certificate(certificate.cert))] });
  t.false('client_secret' in created.body);

  const viaProxy = (cert: KeyAndCertificate | undefined) => ({ localAddress: PROXY, headers: (cert ? { [CERT_HEADER]: encodeURIComponent(cert.cert) } : {}) as Record<string, string> });
  const issued = await tlsRequest(`${server.issuer}/token`, { ...viaProxy(certificate), form: { grant_type: 'client_credentials', client_id: String(created.body.client_id), resource: ADMIN, scope: 'admin' } });
  t.is(issued.status, 200, issued.text);
  const token = issued.json<{ access_token: string }>().access_token;
  t.deepEqual(jose.decodeJwt(token).cnf, { 'x5t#S256': thumbprint(new X509Certificate(certificate.cert)) });

  const call = (cert: KeyAndCertificate | undefined) => tlsRequest(`${ADMIN}/keys`, { ...viaProxy(cert), headers: { ...viaProxy(cert).headers, authorization: `Bearer ${token}` } });
  t.is((await call(certificate)).status, 200);
  const without = await call(undefined);
  t.is(without.status, 401);
  t.regex(String(without.json().error_description), /bound to a client certificate/);
  t.is((await call(other)).status, 401);

  // Rotation through the API: add a second certificate, remove the first, the last one stays.
  const added = await api('POST', `/clients/${created.body.client_id}/certificates`, { body: { certificate: other.cert } });
  t.is(added.status, 201);
  t.is((added.body.thumbprints as string[]).length, 2);
  const first = thumbprint(new X509Certificate(certificate.cert));
  t.is((await api('DELETE', `/clients/${created.body.client_id}/certificates/${first}`)).status, 204);
  const last = await api('DELETE', `/clients/${created.body.client_id}/certificates/${added.body.thumbprint}`);
  t.is(last.status, 400);
  t.regex(String(last.body.error_description), /only certificate/);
  t.is((await api('DELETE', `/clients/${created.body.client_id}/certificates/${first}`)).status, 404);
});

test('a DPoP-bound token is refused, with its proof or as a bearer token', async (t) => {
  const created = await api('POST', '/clients', { body: { kind: 'machine', name: 'DPoP robot', resources: { [ADMIN]: ['admin'] }, roles: ['admin'], require_dpop: true } });
  t.is(created.status, 201);
  const config = await oidc.discovery(new URL(server.issuer), String(created.body.client_id), {}, oidc.ClientSecretBasic(String(created.body.client_secret)), { execute: [oidc.allowInsecureRequests] });
  const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  const tokens = await oidc.clientCredentialsGrant(config, { resource: ADMIN, scope: 'admin' }, { DPoP: dpop });
  t.truthy((jose.decodeJwt(tokens.access_token).cnf as { jkt?: string }).jkt);
  const asBearer = await api('GET', '/keys', { token: tokens.access_token });
  t.is(asBearer.status, 401);
  t.regex(String(asBearer.body.error_description), /DPoP/);
  const asDpop = await api('GET', '/keys', { token: null, headers: { authorization: `DPoP ${tokens.access_token}` } });
  t.is(asDpop.status, 401);
});

test('refused tokens from one address are rate limited: 429 with Retry-After', async (t) => {
  const limited = await startTestServer({ env: { RATE_LIMIT_ADMIN_FAILURES_PER_IP: '3/300' } });
  t.teardown(async () => {
    await limited.close();
    removeDir(limited.dataDir);
  });
  for (let attempt = 0; attempt < 3; attempt += 1) t.is((await api('GET', '/users', { on: limited, token: 'not-a-token' })).status, 401);
  const blocked = await api('GET', '/users', { on: limited, token: 'not-a-token' });
  t.is(blocked.status, 429);
  t.is(blocked.body.error, 'rate_limited');
  t.regex(String(blocked.headers.get('retry-after')), /^\d+$/);
});

test('with ADMIN_API=false there is no admin API and no admin resource to get tokens for', async (t) => {
  const off = await startTestServer({ env: { ADMIN_API: 'false' } });
  t.teardown(async () => {
    await off.close();
    removeDir(off.dataDir);
  });
  const answer = await fetch(`${off.issuer}/admin/api/openapi.json`, { headers: { accept: 'application/json' } });
  t.is(answer.status, 404);
  const refused = await runCliJson(off.cliEnv, ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--resource', `${off.issuer}/admin/api`, '--scope', 'admin']).catch((error: Error) => error);
  t.true(refused instanceof Error);
  t.regex(String((refused as Error).message), /no resource server/);
});

// --- Users ---

test('users: create, read, find by email, part of it, role and status, page through, rename, disable and enable', async (t) => {
  const marker = `marker${Date.now()}`;
  const addresses = [email(marker), email(marker), email(marker)];
  const created = [];
  for (const [index, address] of addresses.entries()) {
    const answer = await api('POST', '/users', { body: { email: address.toUpperCase(), password: 'a long enough admin-made passphrase', given_name: 'Ada', roles: index === 0 ? ['auditor'] : [] } });
    t.is(answer.status, 201);
    t.like(answer.body, { email: address, email_verified: false, given_name: 'Ada', disabled: false, second_factor: false, password_link_sent: false });
    created.push(answer.body);
  }
  const [first, second, third] = created as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
  t.deepEqual(first.roles, ['auditor']);

  const got = await api('GET', `/users/${first.sub}`);
  t.like(got.body, { sub: first.sub, second_factors: { totp: false, passkeys: 0, email_codes: false, recovery_codes_left: 0 } });
  t.false('password_hash' in got.body || 'passwordHash' in got.body);

  t.deepEqual(items(await api('GET', `/users?email=${encodeURIComponent(addresses[1]!.toUpperCase())}`)).map((user) => user.sub), [second.sub]);
  t.deepEqual(items(await api('GET', `/users?email=nobody.${marker}@example.com`)), []);
  t.deepEqual(items(await api('GET', `/users?role=auditor&q=${marker}`)).map((user) => user.sub), [first.sub]);

  const pageOne = await api('GET', `/users?q=${marker}&limit=2`);
  t.deepEqual(items(pageOne).map((user) => user.sub), [first.sub, second.sub]);
  t.truthy(pageOne.body.next_cursor);
  const pageTwo = await api('GET', `/users?q=${marker}&limit=2&cursor=${pageOne.body.next_cursor}`);
  t.deepEqual(items(pageTwo).map((user) => user.sub), [third.sub]);

  const renamed = await api('PATCH', `/users/${second.sub}`, { body: { name: 'Ada Lovelace', given_name: null } });
  t.is(renamed.status, 200);
  t.like(renamed.body, { name: 'Ada Lovelace' });
  t.false('given_name' in renamed.body);

  t.like((await api('PATCH', `/users/${third.sub}`, { body: { disabled: true } })).body, { disabled: true, given_name: 'Ada' });
  t.deepEqual(items(await api('GET', `/users?q=${marker}&status=disabled`)).map((user) => user.sub), [third.sub]);
  const refused = await attemptSignIn(server, addresses[2]!, 'a long enough admin-made passphrase');
  t.is(refused.status, 401, 'a disabled user cannot sign in');
  t.like((await api('PATCH', `/users/${third.sub}`, { body: { disabled: false } })).body, { disabled: false });
});

test('users: found by the start of their email in email order, page by page, through the store', async (t) => {
  const marker = `prefix${Date.now()}`;
  // Created out of email order, so a page in creation order would be wrong.
  const addresses = [`${marker}.carol@example.com`, `${marker}.ann@example.com`, `${marker}.bob@example.com`];
  const subs: Record<string, unknown> = {};
  for (const address of addresses) {
    const answer = await api('POST', '/users', { body: { email: address, password: 'a long enough admin-made passphrase' } });
    t.is(answer.status, 201);
    subs[address] = answer.body.sub;
  }
  const [carol, ann, bob] = addresses as [string, string, string];

  const pageOne = await api('GET', `/users?email_prefix=${marker.toUpperCase()}&limit=2`);
  t.is(pageOne.status, 200);
  t.deepEqual(items(pageOne).map((user) => user.email), [ann, bob]);
  const pageTwo = await api('GET', `/users?email_prefix=${marker}&limit=2&cursor=${pageOne.body.next_cursor}`);
  t.deepEqual(items(pageTwo).map((user) => user.sub), [subs[carol]]);
  t.false('next_cursor' in pageTwo.body);

  t.deepEqual(items(await api('GET', `/users?email_prefix=${marker}.b&q=example`)).map((user) => user.email), [bob]);
  t.deepEqual(items(await api('GET', `/users?email_prefix=${marker}.dave`)), []);
  t.deepEqual(items(await api('GET', `/users?q=${marker}.%25`)), [], 'a % matches only itself');
  // A cursor of the creation-order list is not a position in the email index.
  const oldestFirst = await api('GET', `/users?q=${marker}&limit=1`);
  const mixed = await api('GET', `/users?email_prefix=${marker}&cursor=${oldestFirst.body.next_cursor}`);
  t.is(mixed.status, 400);
  t.like(mixed.body, { error: 'invalid_request', fields: { cursor: 'Not a cursor from this API' } });
});

test('users: refused input says which field, a taken email is 409, an unknown user 404', async (t) => {
  const taken = await registered();
  const duplicate = await api('POST', '/users', { body: { email: taken.email, password: 'another long enough passphrase' } });
  t.is(duplicate.status, 409);
  t.like(duplicate.body, { error: 'conflict', fields: { email: 'Already registered' } });

  const weak = await api('POST', '/users', { body: { email: email(), password: 'short' } });
  t.is(weak.status, 400);
  t.is(weak.body.error, 'invalid_request');
  t.truthy((weak.body.fields as Record<string, string>).password);

  const badEmail = await api('POST', '/users', { body: { email: 'not an address', password: 'a long enough admin-made passphrase' } });
  t.is(badEmail.status, 400);
  t.truthy((badEmail.body.fields as Record<string, string>).email);

  const unknownField = await api('POST', '/users', { body: { email: email(), password: 'a long enough admin-made passphrase', is_admin: true } });
  t.is(unknownField.status, 400);
  t.deepEqual(unknownField.body.fields, { is_admin: 'Unknown field' });

  const nothing = await api('PATCH', `/users/${taken.sub}`, { body: {} });
  t.is(nothing.status, 400);

  t.like((await api('GET', '/users/no-such-user')).body, { error: 'not_found' });
  t.is((await api('GET', '/users/no-such-user')).status, 404);
  t.is((await api('DELETE', '/users/no-such-user/lockout')).status, 404);
  t.is((await api('GET', '/users?limit=0')).status, 400);
  t.is((await api('GET', '/users?cursor=forged')).status, 400);
  t.is((await api('GET', '/users?role=admin&colour=blue')).status, 400);
});

test('users: created without a password, the person is mailed a link to choose one', async (t) => {
  const address = email('invited');
  const answer = await api('POST', '/users', { body: { email: address } });
  t.is(answer.status, 201);
  t.like(answer.body, { email: address, password_link_sent: true });
  const outbox = path.join(server.dataDir, 'outbox');
  await eventually(() => (existsSync(outbox) && readdirSync(outbox).some((file) => {
    const message = readFileSync(path.join(outbox, file), 'utf8');
    return message.includes(address) && message.includes('/password/reset');
  })) || undefined, { what: 'the password link in the outbox', timeoutMs: 10_000 });
  t.pass();
});

test('users: a batch import takes hashes from other systems, reports bad records by position, and the old password signs in', async (t) => {
  const imported = email('imported');
  const records = [
    { email: imported, password_hash: pythonBcrypt('the password from the old system'), roles: ['staff'], external_id: `ext-${imported}` },
    { email: 'not an email' },
    { email: email('weak'), password_hash: 'md5:5f4dcc3b5aa765d61d8327deb882cf99' },
  ];
  const dry = await api('POST', '/users/import', { body: { records, dry_run: true } });
  t.is(dry.status, 200, JSON.stringify(dry.body));
  t.like(dry.body, { dry_run: true, imported: 1 });
  t.deepEqual((await api('GET', `/users?email=${encodeURIComponent(imported)}`)).body.items, [], 'the dry run wrote nothing');

  const answer = await api('POST', '/users/import', { body: { records } });
  t.like(answer.body, { dry_run: false, imported: 1, updated: 0, skipped: 0 });
  t.deepEqual((answer.body.errors as Array<{ line: number }>).map((error) => error.line), [2, 3]);
  t.regex(JSON.stringify(answer.body.errors), /invalid email.*weak hash/);
  t.like((await api('POST', '/users/import', { body: { records: records.slice(0, 1) } })).body, { imported: 0, skipped: 1 });

  const page = await attemptSignIn(server, imported, 'the password from the old system');
  t.is(page.status, 303);
  const account = await server.withServices(({ accounts }) => accounts.findByEmail(imported));
  t.regex(account?.passwordHash ?? '', /^\$argon2id\$/);
  t.deepEqual(account?.roles, ['staff']);

  const tooMany = await api('POST', '/users/import', { body: { records: Array.from({ length: 201 }, () => ({ email: 'a@example.com' })) } });
  t.is(tooMany.status, 400);
  t.is((await api('POST', '/users/import', { body: { records: [], extra: 1 } })).status, 400);
});

test('users: unlock lifts a lockout, roles are given and taken, second factors are reset', async (t) => {
  const person = await registered();
  for (let attempt = 0; attempt < 2; attempt += 1) await attemptSignIn(server, person.email, 'wrong password entirely');
  const locked = await api('GET', `/users/${person.sub}`);
  t.truthy(locked.body.locked_until);
  const counts = await api('GET', '/account-counts');
  t.is(counts.status, 200);
  t.true(Number(counts.body.locked) >= 1 && Number(counts.body.total) >= Number(counts.body.locked), JSON.stringify(counts.body));
  t.deepEqual(items(await api('GET', `/users?email=${encodeURIComponent(person.email)}&status=locked`)).map((user) => user.sub), [person.sub]);
  t.is((await api('DELETE', `/users/${person.sub}/lockout`)).status, 204);
  t.false('locked_until' in (await api('GET', `/users/${person.sub}`)).body);

  t.deepEqual((await api('PUT', `/users/${person.sub}/roles/billing:viewer`)).body, { roles: ['billing:viewer'] });
  t.deepEqual((await api('PUT', `/users/${person.sub}/roles/billing:viewer`)).body, { roles: ['billing:viewer'] }, 'adding it again changes nothing');
  t.is((await api('PUT', `/users/${person.sub}/roles/not%20a%20role`)).status, 400);
  t.deepEqual((await api('DELETE', `/users/${person.sub}/roles/billing:viewer`)).body, { roles: [] });

  await server.withServices(async ({ secondFactors }) => {
    const enrolment = await secondFactors.startTotpEnrolment(person.sub);
    await secondFactors.confirmTotp(person.sub, OTPAuth.URI.parse(enrolment.otpauthUri).generate());
  });
  t.like((await api('GET', `/users/${person.sub}`)).body, { second_factor: true, second_factors: { totp: true } });
  t.is((await api('DELETE', `/users/${person.sub}/second-factors`)).status, 204);
  t.like((await api('GET', `/users/${person.sub}`)).body, { second_factor: false, second_factors: { totp: false } });
});

// --- Sessions and grants ---

test('sessions and grants: listed without cookie values, one session ended, all ended, an app\'s grant revoked so its refresh token stops working', async (t) => {
  const person = await registered();
  const rp = await discover(server.issuer);
  const first = await signIn(rp, new UserAgent(), person);
  await signIn(rp, new UserAgent(), person);

  const sessions = await api('GET', `/users/${person.sub}/sessions`);
  t.is(sessions.status, 200);
  t.is(items(sessions).length, 2);
  t.deepEqual(items(sessions)[0]!.clients, ['test-rp']);
  const storeIds = await server.withServices(async (_services, store) => (await store.oidc.findByAccountId('Session', person.sub)).map(({ id }) => id));
  for (const id of storeIds) t.false(JSON.stringify(sessions.body).includes(id), 'the session cookie value never leaves');

  t.is((await api('DELETE', `/users/${person.sub}/sessions/${items(sessions)[0]!.id}`)).status, 204);
  t.is(items(await api('GET', `/users/${person.sub}/sessions`)).length, 1);
  t.is((await api('DELETE', `/users/${person.sub}/sessions/${items(sessions)[0]!.id}`)).status, 404);
  t.deepEqual((await api('DELETE', `/users/${person.sub}/sessions`)).body, { ended: 1 });
  t.deepEqual(items(await api('GET', `/users/${person.sub}/sessions`)), []);

  const grants = await api('GET', `/users/${person.sub}/grants`);
  t.is(items(grants).length, 1);
  t.like(items(grants)[0], { client_id: 'test-rp', client_name: 'Test RP' });
  t.true((items(grants)[0]!.scopes as string[]).includes('offline_access'));
  t.is((await api('DELETE', `/users/${person.sub}/grants/test-rp`)).status, 204);
  t.deepEqual(items(await api('GET', `/users/${person.sub}/grants`)), []);
  t.is((await api('DELETE', `/users/${person.sub}/grants/test-rp`)).status, 404);
  const refresh = await t.throwsAsync(oidc.refreshTokenGrant(rp, first.tokens.refresh_token!));
  t.is((refresh as { error?: string }).error, 'invalid_grant');
});

// --- Clients ---

test('clients: a relying party is created with its secret shown once, read and listed without it, and deleted', async (t) => {
  const created = await api('POST', '/clients', { body: { kind: 'relying_party', name: 'Shop', redirect_uris: ['https://shop.example.com/callback'], require_mfa: true } });
  t.is(created.status, 201);
  t.like(created.body, { kind: 'relying_party', source: 'store', client_name: 'Shop', redirect_uris: ['https://shop.example.com/callback'], require_mfa: true, token_endpoint_auth_method: 'client_secret_basic' });
  t.regex(String(created.body.client_secret), /^[A-Za-z0-9_-]{43}$/);
  const id = String(created.body.client_id);

  const got = await api('GET', `/clients/${id}`);
  t.is(got.status, 200);
  t.false('client_secret' in got.body);
  const listed = await api('GET', '/clients?kind=relying_party&limit=200');
  t.true(items(listed).some((client) => client.client_id === id));
  t.false(JSON.stringify(listed.body).includes(String(created.body.client_secret)));
  t.false(JSON.stringify(await api('GET', '/clients?limit=200')).includes('test-rp-secret'), 'not even a static client\'s plaintext secret');
  const configured = items(await api('GET', '/clients?source=config'));
  t.true(configured.length > 0 && configured.every((client) => client.source === 'config'));

  t.is((await api('DELETE', `/clients/${id}`)).status, 204);
  t.is((await api('GET', `/clients/${id}`)).status, 404);
  t.is((await api('DELETE', `/clients/${id}`)).status, 404);
});

test('clients: refused input is 400 with the reason, a configured client cannot be deleted here (409)', async (t) => {
  const badUri = await api('POST', '/clients', { body: { kind: 'relying_party', name: 'Bad', redirect_uris: ['http://shop.example.com/callback'] } });
  t.is(badUri.status, 400);
  t.regex(String(badUri.body.error_description), /must use https/);
  const noResource = await api('POST', '/clients', { body: { kind: 'machine', name: 'Lost', resources: { 'https://nowhere.example.com': ['read'] } } });
  t.is(noResource.status, 400);
  t.regex(String(noResource.body.error_description), /no resource server/);
  const badDn = await api('POST', '/clients', { body: { kind: 'machine', name: 'Bad DN', auth: 'tls_client_auth', tls_subjects: [{ type: 'subject_dn', value: 'CN=svc,FOO=bar' }], resources: { [ORDERS]: ['orders:read'] } } });
  t.is(badDn.status, 400);
  t.regex(String(badDn.body.error_description), /not a distinguished name .*unknown attribute type FOO/);
  const noKind = await api('POST', '/clients', { body: { name: 'Which' } });
  t.is(noKind.status, 400);
  const wrongKindFields = await api('POST', '/clients', { body: { kind: 'relying_party', name: 'Mixed', redirect_uris: ['https://x.example.com/cb'], resources: {} } });
  t.is(wrongKindFields.status, 400);
  t.like(wrongKindFields.body.fields, { resources: 'Unknown field' });
  const configured = await api('DELETE', '/clients/test-rp');
  t.is(configured.status, 409);
  t.is(configured.body.error, 'conflict');
});

test('clients: a tls_client_auth client\'s subjects are added and removed, never the last one', async (t) => {
  const created = await api('POST', '/clients', {
    body: { kind: 'machine', name: 'Subject svc', auth: 'tls_client_auth', tls_subjects: [{ type: 'subject_dn', value: 'CN=svc,O=Test' }], resources: { [ORDERS]: ['orders:read'] } },
  });
  t.is(created.status, 201);
  const id = String(created.body.client_id);
  const added = await api('POST', `/clients/${id}/tls-subjects`, { body: { type: 'san_dns', value: 'svc.internal' } });
  t.is(added.status, 201);
  t.deepEqual(added.body.tls_subjects, [{ type: 'subject_dn', value: 'CN=svc,O=Test' }, { type: 'san_dns', value: 'svc.internal' }]);
  t.is((await api('DELETE', `/clients/${id}/tls-subjects?type=subject_dn&value=${encodeURIComponent('CN=svc,O=Test')}`)).status, 204);
  t.deepEqual((await api('GET', `/clients/${id}`)).body.tls_subjects, [{ type: 'san_dns', value: 'svc.internal' }]);
  t.is((await api('DELETE', `/clients/${id}/tls-subjects?type=san_dns&value=svc.internal`)).status, 400);
});

/** Where oidc-provider's authorization endpoint sends a code request to this client and redirect URI: an interaction when it accepts them. */
async function authorizationAnswer(clientId: string, redirectUri: string): Promise<{ status: number; location: string }> {
  const query = new URLSearchParams({ client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: redirectUri, code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' });
  const response = await fetch(`${server.issuer}/auth?${query}`, { redirect: 'manual' });
  await response.body?.cancel();
  return { status: response.status, location: response.headers.get('location') ?? '' };
}

test('clients: a relying party is renamed and its redirect URIs replaced by the rules of creating one, and oidc-provider follows the change', async (t) => {
  const created = await api('POST', '/clients', { body: { kind: 'relying_party', name: 'Wiki', redirect_uris: ['https://wiki.example.com/old'] } });
  const id = String(created.body.client_id);
  const changed = await api('PATCH', `/clients/${id}`, { body: { client_name: 'Team wiki', redirect_uris: ['https://wiki.example.com/callback'], post_logout_redirect_uris: ['https://wiki.example.com/'] } });
  t.is(changed.status, 200);
  t.like(changed.body, { client_name: 'Team wiki', redirect_uris: ['https://wiki.example.com/callback'], post_logout_redirect_uris: ['https://wiki.example.com/'] });
  t.false('client_secret' in changed.body);
  t.regex((await authorizationAnswer(id, 'https://wiki.example.com/callback')).location, /\/interaction\//, 'the new redirect URI is accepted at once');
  t.is((await authorizationAnswer(id, 'https://wiki.example.com/old')).status, 400, 'the old one no more');

  const insecure = await api('PATCH', `/clients/${id}`, { body: { redirect_uris: ['http://wiki.example.com/callback'] } });
  t.is(insecure.status, 400);
  t.regex(String((insecure.body.fields as Record<string, string>).redirect_uris), /must use https/);
  t.is((await api('PATCH', `/clients/${id}`, { body: { redirect_uris: [] } })).status, 400);
  t.is((await api('PATCH', `/clients/${id}`, { body: {} })).status, 400);
  t.is((await api('PATCH', `/clients/${id}`, { body: { client_secret: 'mine' } })).status, 400);
  t.deepEqual((await api('GET', `/clients/${id}`)).body.redirect_uris, ['https://wiki.example.com/callback'], 'a refused change changes nothing');

  const robot = await api('POST', '/clients', { body: { kind: 'machine', name: 'No URIs', resources: { [ORDERS]: ['orders:read'] } } });
  t.is((await api('PATCH', `/clients/${String(robot.body.client_id)}`, { body: { redirect_uris: ['https://x.example.com/cb'] } })).status, 400);
  t.is((await api('PATCH', '/clients/test-rp', { body: { client_name: 'Renamed' } })).status, 409);
  t.is((await api('PATCH', '/clients/no-such-client', { body: { client_name: 'Renamed' } })).status, 404);
});

test('clients: a rotated secret is answered once, works at once, and the old one stops working', async (t) => {
  const created = await api('POST', '/clients', { body: { kind: 'machine', name: 'Rotating robot', resources: { [ORDERS]: ['orders:read'] } } });
  const id = String(created.body.client_id);
  const tokenWith = async (secret: string) => {
    const config = await oidc.discovery(new URL(server.issuer), id, {}, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] });
    return oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' });
  };
  t.truthy((await tokenWith(String(created.body.client_secret))).access_token);

  const rotated = await api('POST', `/clients/${id}/secret`);
  t.is(rotated.status, 200);
  t.is(rotated.body.client_id, id);
  t.regex(String(rotated.body.client_secret), /^[A-Za-z0-9_-]{43}$/);
  t.truthy((await tokenWith(String(rotated.body.client_secret))).access_token);
  const old = await t.throwsAsync(tokenWith(String(created.body.client_secret)));
  // openid-client reports the 401's WWW-Authenticate challenge (invalid_client) as its error.
  t.is((old as { status?: number }).status, 401);
  t.false(JSON.stringify((await api('GET', `/clients/${id}`)).body).includes(String(rotated.body.client_secret)));

  const publicApp = await api('POST', '/clients', { body: { kind: 'relying_party', name: 'SPA', public: true, redirect_uris: ['https://spa.example.com/cb'] } });
  const refused = await api('POST', `/clients/${String(publicApp.body.client_id)}/secret`);
  t.is(refused.status, 400);
  t.regex(String(refused.body.error_description), /not a client secret/);
  t.is((await api('POST', '/clients/test-rp/secret')).status, 409);
  t.is((await api('POST', '/clients/no-such-client/secret')).status, 404);
});

// --- Resource servers ---

test('resources: the admin API is listed as built in; one is created with its introspection secret once, read by its encoded audience, and deleted', async (t) => {
  const listed = await api('GET', '/resources?limit=200');
  t.like(items(listed).find((resource) => resource.audience === ADMIN), { source: 'builtin', scopes: ['admin'], scope_roles: { admin: ['admin'] }, format: 'jwt' });

  const audience = `https://api${Date.now()}.example.com`;
  const created = await api('POST', '/resources', { body: { audience, scopes: ['read', 'write'], ttl: 600, scope_roles: { write: ['admin'] } } });
  t.is(created.status, 201);
  t.like(created.body, { audience, scopes: ['read', 'write'], ttl: 600, format: 'jwt', source: 'store', scope_roles: { write: ['admin'] } });
  t.regex(String(created.body.client_secret), /^[A-Za-z0-9_-]{43}$/);
  const got = await api('GET', `/resources/${encodeURIComponent(audience)}`);
  t.is(got.status, 200);
  t.false('client_secret' in got.body);
  t.is(got.body.client_id, created.body.client_id);

  t.is(created.body.signing_alg, 'RS256', 'the default');
  const es256 = await api('POST', '/resources', { body: { audience: `${audience}/es256`, scopes: ['read'], signing_alg: 'ES256' } });
  t.is(es256.status, 201);
  t.is(es256.body.signing_alg, 'ES256');
  t.is((await api('GET', `/resources/${encodeURIComponent(`${audience}/es256`)}`)).body.signing_alg, 'ES256');
  t.is((await api('POST', '/resources', { body: { audience: `${audience}/hs`, scopes: ['read'], signing_alg: 'HS256' } })).status, 400);
  t.is((await api('POST', '/resources', { body: { audience: `${audience}/opaque`, scopes: ['read'], format: 'opaque', signing_alg: 'ES256' } })).status, 400);
  t.is((await api('DELETE', `/resources/${encodeURIComponent(`${audience}/es256`)}`)).status, 204);
  t.is((await api('POST', '/resources', { body: { audience, scopes: ['read'] } })).status, 409);
  t.is((await api('DELETE', `/resources/${encodeURIComponent(audience)}`)).status, 204);
  t.is((await api('GET', `/resources/${encodeURIComponent(audience)}`)).status, 404);
  t.is((await api('GET', `/clients/${created.body.client_id}`)).status, 404, 'its introspection client went with it');
});

test('resources: the admin API\'s own cannot be deleted or shadowed, and API scopes must be API scopes', async (t) => {
  const builtIn = await api('DELETE', `/resources/${encodeURIComponent(ADMIN)}`);
  t.is(builtIn.status, 409);
  const shadow = await api('POST', '/resources', { body: { audience: ADMIN, scopes: ['admin'] } });
  t.is(shadow.status, 400);
  t.regex(String(shadow.body.error_description), /reserved/);
  const openid = await api('POST', '/resources', { body: { audience: 'https://other.example.com', scopes: ['openid'] } });
  t.is(openid.status, 400);
  t.regex(String(openid.body.error_description), /OpenID Connect scope/);
  t.is((await api('POST', '/resources', { body: { audience: 'not a uri', scopes: ['read'] } })).status, 400);
});

// --- Keys ---

test.serial('keys: listed without private parts; rotated, new tokens are signed with the new key and tokens from before still work', async (t) => {
  const before = await api('GET', '/keys');
  t.is(before.status, 200);
  const current = items(before).filter((key) => key.status === 'current' && key.use === 'sig').map((key) => key.kid);
  t.is(current.length, 3);
  t.false(JSON.stringify(before.body).includes('"d"'));
  const oldToken = await forged();

  const rotated = await api('POST', '/keys/rotate');
  t.is(rotated.status, 200);
  t.deepEqual([...(rotated.body.retired as string[])].sort(), [...current].sort());
  t.is((rotated.body.current as string[]).length, 3);

  t.is((await api('GET', '/keys', { token: oldToken })).status, 200, 'a token signed before the rotation still works');
  const fresh = await oidc.clientCredentialsGrant(machineConfig, { resource: ADMIN, scope: 'admin' });
  t.true((rotated.body.current as string[]).includes(String(jose.decodeProtectedHeader(fresh.access_token).kid)), 'this instance signs with the new key at once');
  t.is((await api('GET', '/keys', { token: fresh.access_token })).status, 200);
});

// --- Audit events ---

test('every admin write is an admin.action event in the audit trail, queried by type, account and client', async (t) => {
  const person = await registered();
  t.is((await api('PUT', `/users/${person.sub}/roles/auditor`)).status, 200);
  const events = await eventually(async () => {
    const answer = await api('GET', `/audit-events?type=admin.action&sub=${person.sub}`);
    return items(answer).length >= 2 ? items(answer) : undefined;
  }, { what: 'two admin.action events', timeoutMs: 10_000 });
  t.like(events[0], { type: 'admin.action', sub: person.sub, client_id: machine.client_id, details: { action: 'addRole', role: 'auditor', actor_kind: 'client', actor_client_id: machine.client_id, status: 200 } });
  t.like(events[1], { type: 'admin.action', details: { action: 'createUser', created_sub: person.sub, status: 201 } });
  t.truthy(events[0]!.request_id);

  const byClient = await api('GET', `/audit-events?client_id=${machine.client_id}&type=admin.action&type=role.added&limit=1`);
  t.is(items(byClient).length, 1);
  t.truthy(byClient.body.next_cursor);
  const next = await api('GET', `/audit-events?client_id=${machine.client_id}&limit=1&cursor=${byClient.body.next_cursor}`);
  t.is(next.status, 200);
  t.is((await api('GET', '/audit-events?type=no.such.type')).status, 400);
  t.is((await api('GET', '/audit-events?since=yesterday')).status, 400);
});

test('audit events are found by time: since is inclusive, until exclusive, and a range without events is empty', async (t) => {
  const before = new Date(Date.now() - 1000).toISOString();
  const person = await registered();
  const found = await eventually(async () => {
    const answer = await api('GET', `/audit-events?type=admin.action&sub=${person.sub}&since=${before}`);
    return items(answer).length >= 1 ? items(answer) : undefined;
  }, { what: 'an admin.action event', timeoutMs: 10_000 });
  t.true(found.every((event) => String(event.at) >= before));
  const query = (range: string) => api('GET', `/audit-events?type=admin.action&sub=${person.sub}&${range}`).then(items);
  // The oldest of them: \`since\` its own time still finds it, \`until\` its time does not.
  const oldest = String(found.at(-1)!.at);
  t.is((await query(`since=${oldest}`)).length, found.length);
  t.is((await query(`until=${oldest}`)).length, 0);
  t.is((await query(`until=${before}`)).length, 0);
  const later = new Date(Date.now() + 60_000).toISOString();
  t.is((await query(`since=${later}`)).length, 0);
  t.is((await query(`since=${before}&until=${later}`)).length, found.length);
});

// --- Hostile input ---

test('operator-shaped input is refused wherever it is put', async (t) => {
  const cases: Array<[string, string, unknown]> = [
    ['a value', '/users', { email: { $gt: '' }, password: 'a long enough admin-made passphrase' }],
    ['a top-level key', '/users', { email: email(), $where: 'sleep(1000)' }],
    ['a key deep inside', '/clients', { kind: 'machine', name: 'Sneaky', auth: 'private_key_jwt', jwks: { keys: [{ kty: 'RSA', $ne: null }] }, resources: { [ORDERS]: ['orders:read'] } }],
    ['a record key', '/resources', { audience: 'https://x.example.com', scopes: ['read'], scope_roles: { $gt: ['admin'] } }],
    ['the prototype', '/users', JSON.parse('{"email": "proto@example.com", "__proto__": {"admin": true}}')],
  ];
  for (const [where, route, body] of cases) {
    const answer = await api('POST', route, { body });
    t.is(answer.status, 400, where);
    t.is(answer.body.error, 'invalid_request', where);
  }
  t.is((await api('GET', '/users?email[$ne]=x')).status, 400, 'in the query string');
  t.is((await api('GET', '/users?email=a&email=b')).status, 400, 'a repeated parameter is not a string');
  t.deepEqual(items(await api('GET', `/users?email=${encodeURIComponent('{"$gt": ""}')}`)), [], 'as text it is only text');
});

test('bodies: over 64 kB is 413, not JSON is 415, malformed or not an object is 400, a body where none is taken is 400', async (t) => {
  const big = await api('POST', '/users', { raw: JSON.stringify({ email: email(), name: 'x'.repeat(70_000) }) });
  t.is(big.status, 413);
  t.is(big.body.error, 'request_too_large');
  const form = await api('POST', '/users', { raw: 'email=a%40example.com', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.is(form.status, 415);
  t.is(form.body.error, 'unsupported_media_type');
  t.is((await api('POST', '/users', { raw: '{"email": ' })).status, 400);
  t.is((await api('POST', '/users', { raw: '[1, 2]' })).status, 400);
  t.is((await api('POST', '/users', { raw: '"a string"' })).status, 400);
  t.is((await api('POST', '/keys/rotate', { body: { please: true } })).status, 400);
  t.is((await api('POST', '/users')).status, 400, 'no body at all');
});

test('unknown endpoints are 404 unknown_endpoint, a known path with another method 405 with Allow', async (t) => {
  const unknown = await api('GET', '/nothing-here');
  t.is(unknown.status, 404);
  t.is(unknown.body.error, 'unknown_endpoint');
  const wrongMethod = await api('PUT', '/keys');
  t.is(wrongMethod.status, 405);
  t.regex(String(wrongMethod.headers.get('allow')), /GET/);
  t.is((await api('GET', '/nothing-here', { token: null })).status, 401, 'without a token nothing is revealed');
});

// --- OpenAPI ---

test('the OpenAPI document is public, covers every route of the table, and every documented operation is routed', async (t) => {
  const answer = await api('GET', '/openapi.json', { token: null });
  t.is(answer.status, 200);
  const document = answer.body as { openapi: string; servers: Array<{ url: string }>; paths: Record<string, Record<string, { operationId: string }>> };
  t.is(document.openapi, '3.1.0');
  t.is(document.servers[0]!.url, ADMIN);
  t.deepEqual(document, JSON.parse(JSON.stringify(openApiDocument(ADMIN_ROUTES, server.issuer))));

  for (const route of ADMIN_ROUTES) {
    t.is(document.paths[route.path]?.[route.method]?.operationId, route.operationId, `${route.method} ${route.path} is documented`);
  }
  const operations = Object.entries(document.paths).flatMap(([template, methods]) => Object.keys(methods).map((method) => [template, method] as const));
  t.is(operations.length, ADMIN_ROUTES.length + 1, 'nothing documented that the table does not have (besides the document itself)');

  const placeholders: Record<string, string> = {
    sub: 'no-such-user', role: 'auditor', session_id: 'x'.repeat(43), client_id: 'no-such-client', thumbprint: 'x'.repeat(43), audience: encodeURIComponent('https://no-such.example.com'),
  };
  for (const [template, method] of operations) {
    const route = template.replace(/\{([a-z_]+)\}/g, (_match, name: string) => placeholders[name]!);
    // Writes are sent a body that fails validation (or a body where none is taken), so nothing changes.
    const answer = await api(method.toUpperCase(), route, method === 'get' ? {} : { body: { not_a_field: true } });
    t.not(answer.body.error, 'unknown_endpoint', `${method} ${template} answers`);
    t.not(answer.status, 405, `${method} ${template} answers`);
  }
});
