/**
 * Hostile input at every public endpoint, generated (fast-check): malformed, oversized and
 * adversarial OAuth parameters, form posts, JSON bodies (MongoDB operator injection included),
 * unicode tricks (RTL override, NUL, lone surrogates, overlong and invalid UTF-8), header injection
 * and malformed cookies, and the admin API's writes and queries with a real admin token. Whatever
 * arrives, no answer is a 5xx and none shows a stack trace or a path inside the server. On the embedded store, and on MongoDB (where operator injection would bite)
 * with fewer runs. A failure prints the seed and the shrunk input that caused it.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';
import fc from 'fast-check';

import { runCliJson } from './helpers/cli.ts';
import { openLoginForm } from './helpers/login-form.ts';
import { startMongoLane, type MongoLane } from './helpers/mongo-lane.ts';
import { authorizationRequest, discover, RP_CALLBACK, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
const rp = staticClient();
const clients = [
  rp,
  staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true }),
  staticClient({ client_id: 'native', client_secret: undefined, token_endpoint_auth_method: 'none', client_name: 'Native', tessera_first_party: true }),
];
const RP_BASIC = `Basic ${btoa(`${String(rp.client_id)}:${String(rp.client_secret)}`)}`;
const BACKEND_BASIC = `Basic ${btoa(`backend:${BACKEND_SECRET}`)}`;

// ---------------------------------------------------------------------------------------------
// What hostile input looks like.

/** Percent-encoded pieces a well-behaved client never sends: NUL, CR/LF, invalid and overlong UTF-8, bidi overrides, injections. */
const RAW_PIECES = [
  '%00', '%0D%0A', '%0d%0aSet-Cookie:%20x=y', '%ED%A0%80', '%ED%BF%BF', '%C0%AF', '%C0%80', '%E0%80%AF', '%F8%88%80%80%80',
  '%FF', '%FE%FF', '%', '%z', '%%', '%E2%80%AE', '%E2%80%8B', '%EF%BB%BF', '%F4%90%80%80', '+', '%2B', '%26', '%3D', '&&', '==',
  '%7B%22%24gt%22%3A%22%22%7D', '%5B%5D', '..%2F..%2Fetc%2Fpasswd', '%3Cscript%3Ealert(1)%3C%2Fscript%3E', '__proto__', 'constructor',
  '%27%20OR%201%3D1--', '%24where', '%24ne', '%24%7B7*7%7D', 'javascript:alert(1)', 'https://evil.example/cb', 'http://localhost:9/callback',
  'openid', 'openid%20offline_access', 'code', 'none', 'S256', 'plain', '-1', '0', '1e999', 'NaN', 'true', '[object Object]',
];

/** UTF-8 of each UTF-16 code unit on its own: lone surrogates come out as the (invalid) bytes ED A0 80 and so on. */
function rawUtf8(text: string): string {
  const bytes: number[] = [];
  for (let index = 0; index < text.length; index += 1) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) bytes.push(unit);
    else if (unit < 0x800) bytes.push(0xc0 | (unit >> 6), 0x80 | (unit & 0x3f));
    else bytes.push(0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f));
  }
  return bytes.map((byte) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0').toUpperCase()}`)).join('');
}

/** One encoded form or query value. */
const encodedValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 30 }).map(rawUtf8),
  fc.constantFrom(...RAW_PIECES),
  fc.array(fc.constantFrom(...RAW_PIECES), { minLength: 2, maxLength: 6 }).map((pieces) => pieces.join('')),
  fc.integer({ min: 1_000, max: 12_000 }).map((length) => 'a'.repeat(length)),
);

/** Parameter names: the expected ones, the same with array and object syntax (`email[$gt]`), and junk. */
function encodedNames(names: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...names) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...names), fc.constantFrom('[$gt]', '[$ne]', '[]', '[0]', '[__proto__]', '.$where', '%5B%24gt%5D')).map(([name, suffix]) => `${name}${suffix}`) },
    { weight: 1, arbitrary: encodedValue },
  );
}

/** A urlencoded body or query string: pairs (names repeat, values are hostile), sometimes over a valid base. */
function encodedPairs(names: readonly string[], base: Record<string, string> = {}): fc.Arbitrary<string> {
  // Mostly over the valid base, so the input gets past the first check to the code behind it.
  const keepBase = fc.constantFrom(true, true, true, false);
  return fc.tuple(keepBase, fc.array(fc.tuple(encodedNames(names), encodedValue), { maxLength: 10 })).map(([keepBase, pairs]) => {
    const all = [...(keepBase ? Object.entries(base).map(([name, value]) => [name, encodeURIComponent(value)]) : []), ...pairs];
    return all.map(([name, value]) => `${name}=${value}`).join('&');
  });
}

/** A JSON value where a string is expected: operators, prototypes, wrong types, unicode tricks. */
const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom({ $gt: '' }, { $ne: null }, { $regex: '.*' }, { $where: 'sleep(1000)' }, { $exists: true }, { $in: ['a@example.com'] },
    { __proto__: { admin: true } }, { constructor: { prototype: { admin: true } } }, '\u202e\u0000', '\ud800', 'a@example.com\u0000', 'A@EXAMPLE.COM'),
  fc.jsonValue({ maxDepth: 2 }),
);

const validEmail = fc.emailAddress().map((email) => email.slice(0, 200));
const validPassword = fc.string({ unit: 'grapheme', minLength: 12, maxLength: 64 });
const registrationBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.record({ email: fc.oneof(validEmail, jsonish), password: fc.oneof(validPassword, jsonish), name: fc.oneof(fc.string({ unit: 'binary', maxLength: 120 }), jsonish) },
    { requiredKeys: ['email', 'password'] }).map((body) => JSON.stringify(body)),
  fc.record({ email: jsonish, password: jsonish, name: jsonish, given_name: jsonish, client_id: jsonish }, { requiredKeys: [] }).map((body) => JSON.stringify(body)),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'prototype', '$where', '$gt', 'email', 'password', 'email.$gt'), jsonish).map((body) => JSON.stringify(body)),
  fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
  fc.constantFrom('{', '{"email":', '\u0000', '[]', 'null', '"text"', '{"email":"a@example.com","email":{"$gt":""},"password":"x"}', '{"email":"a@b.c","password":"\\ud800\\udc00\\ud800"}'),
  fc.uint8Array({ maxLength: 200 }),
  fc.constant(Uint8Array.from([0x7b, 0x22, 0x65, 0x6d, 0x61, 0x69, 0x6c, 0x22, 0x3a, 0x22, 0xff, 0xc0, 0xaf, 0x22, 0x7d])),
);

/** Values Node lets through in a header (no CR, LF or NUL; latin-1 "obs-text" allowed). */
const headerValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((code) => code !== 0x7f).map((code) => String.fromCharCode(code)), maxLength: 200 }),
  fc.constantFrom('', ' ', '=', ';', ';;;', '"', '\\', 'a=b; a=c', '_session=', '_session=x; _session.sig=y', 'tessera.csrf=%ZZ', '%E2%80%AE',
    'Basic', 'Basic !!!', `Basic ${btoa('a:b:c')}`, 'Bearer', 'Bearer ', 'Bearer a b', 'DPoP x', '*/*', 'text/html;q=abc'),
  fc.integer({ min: 1_000, max: 8_000 }).map((length) => 'x'.repeat(length)),
);

// ---------------------------------------------------------------------------------------------
// What every answer must be.

interface Answer {
  status: number;
  body: string;
  what: string;
}

function assertSafe(answer: Answer): void {
  const leak = /\n\s+at [\w.<>$[\] ]+ \(|node_modules|\.ts:\d+|\bat async\b/.exec(answer.body) ?? (answer.body.includes(ROOT) ? [ROOT] : null);
  if (answer.status >= 500 || leak) {
    throw new Error(`${answer.what} answered ${answer.status}${leak ? ` and leaked ${JSON.stringify(leak[0])}` : ''}: ${answer.body.slice(0, 400)}`);
  }
}

/** Requests to one server, counting the statuses: logged at the end, they show the input reached past the front door. */
class Client {
  readonly server: TestServer;
  readonly statuses = new Map<number, number>();

  constructor(server: TestServer) {
    this.server = server;
  }

  async send(pathAndQuery: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(new URL(pathAndQuery, this.server.url), { redirect: 'manual', ...init, signal: AbortSignal.timeout(15_000) });
    return this.#counted({ status: response.status, body: await response.text(), what: `${init.method ?? 'GET'} ${pathAndQuery.slice(0, 120)}` });
  }

  async sendRaw(request: Buffer): Promise<Answer> {
    return this.#counted(await sendRaw(this.server, request));
  }

  summary(): string {
    return [...this.statuses].sort(([a], [b]) => a - b).map(([status, times]) => `${status}×${times}`).join(' ');
  }

  #counted(answer: Answer): Answer {
    this.statuses.set(answer.status, (this.statuses.get(answer.status) ?? 0) + 1);
    return answer;
  }
}

/** A raw HTTP/1.1 request on a socket: header injection that fetch and node:http refuse to send. */
function sendRaw(server: TestServer, request: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(15_000, () => socket.destroy(new Error('no answer within 15 s')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text, what: `raw ${JSON.stringify(request.toString('latin1').slice(0, 120))}` });
    });
    socket.end(request);
  });
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };

// ---------------------------------------------------------------------------------------------
// The properties, each over one family of endpoints; run on each store.

type Property = (client: Client, runs: number) => Promise<void>;

const AUTHORIZATION_PARAMETERS = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'nonce', 'prompt', 'max_age', 'code_challenge',
  'code_challenge_method', 'claims', 'request', 'request_uri', 'id_token_hint', 'login_hint', 'acr_values', 'resource', 'response_mode', 'ui_locales', 'display'];
const VALID_AUTHORIZATION = { client_id: String(rp.client_id), redirect_uri: RP_CALLBACK, response_type: 'code', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' };

const properties: Record<string, Property> = {
  async 'the authorization endpoint, by GET and POST, and pushed authorization requests'(client, runs) {
    await fc.assert(fc.asyncProperty(encodedPairs(AUTHORIZATION_PARAMETERS, VALID_AUTHORIZATION), fc.constantFrom('GET', 'POST', 'PAR'), async (pairs, how) => {
      if (how === 'GET') assertSafe(await client.send(`/auth?${pairs}`));
      else if (how === 'POST') assertSafe(await client.send('/auth', { method: 'POST', headers: form, body: pairs }));
      else assertSafe(await client.send('/request', { method: 'POST', headers: { ...form, authorization: RP_BASIC }, body: pairs }));
    }), { numRuns: runs });
  },

  async 'the token endpoint, with every grant type and client authentication'(client, runs) {
    const grants = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code',
      'urn:ietf:params:oauth:grant-type:jwt-bearer', 'password', 'implicit', 'urn:openid:params:grant-type:ciba'];
    const names = ['grant_type', 'code', 'refresh_token', 'redirect_uri', 'code_verifier', 'scope', 'resource', 'client_id', 'client_secret',
      'client_assertion', 'client_assertion_type', 'device_code', 'audience', 'username', 'password'];
    const authorization = fc.option(fc.oneof({ weight: 3, arbitrary: fc.constant(RP_BASIC) }, { weight: 1, arbitrary: headerValue }), { nil: undefined, freq: 4 });
    await fc.assert(fc.asyncProperty(fc.constantFrom(...grants), encodedPairs(names), authorization, async (grant, pairs, auth) => {
      const body = `grant_type=${encodeURIComponent(grant)}&${pairs}`;
      assertSafe(await client.send('/token', { method: 'POST', headers: { ...form, ...(auth !== undefined && { authorization: auth }) }, body }));
    }), { numRuns: runs });
  },

  async 'introspection, revocation and userinfo'(client, runs) {
    const names = ['token', 'token_type_hint', 'client_id', 'client_secret', 'access_token'];
    await fc.assert(fc.asyncProperty(fc.constantFrom('/token/introspection', '/token/revocation', '/me'), encodedPairs(names), headerValue, fc.boolean(),
      async (endpoint, pairs, auth, asClient) => {
        const authorization = endpoint === '/me' ? `Bearer ${auth}` : asClient ? RP_BASIC : auth;
        assertSafe(await client.send(endpoint, { method: 'POST', headers: { ...form, authorization }, body: pairs }));
        if (endpoint === '/me') assertSafe(await client.send(`/me?${pairs}`, { headers: { authorization } }));
      }), { numRuns: runs });
  },

  async 'the sign-in, registration, consent and second-factor forms'(client, runs) {
    const login = await openLoginForm(client.server);
    const steps = ['login', 'register', 'consent', 'abort', 'second-factor/totp', 'second-factor/recovery-code', 'second-factor/email-code',
      'second-factor/passkey', 'passkey', 'enrol/totp', 'enrol/email', 'enrol/passkey', 'enrol/done'];
    const names = ['_csrf', 'email', 'password', 'password_confirmation', 'name', 'decision', 'code', 'credential', 'remember', 'uid'];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...steps), encodedPairs(names, { _csrf: login.fields._csrf ?? '' }), async (step, pairs) => {
      const action = login.action.replace(/\/login$/, `/${step}`);
      // With the browser's cookies (interaction, CSRF), so the post reaches the step's handler.
      assertSafe(await client.send(new URL(action).pathname, { method: 'POST', headers: { ...form, cookie: login.agent.cookieHeader() }, body: pairs }));
    }), { numRuns: runs });
  },

  async 'the password reset and email verification pages'(client, runs) {
    const agent = new UserAgent();
    const forgot = await agent.request(`${client.server.url}/password/forgot`);
    const csrf = readForm(forgot.body, '/password/forgot').fields._csrf ?? '';
    const names = ['_csrf', 'email', 'token', 'password', 'password_confirmation', 'uid'];
    await fc.assert(fc.asyncProperty(fc.constantFrom('/password/forgot', '/password/reset', '/email/verify'), encodedPairs(names, { _csrf: csrf }), fc.boolean(),
      async (page, pairs, viaGet) => {
        const answer = viaGet
          ? await client.send(`${page}?${pairs}`, { headers: { cookie: agent.cookieHeader() } })
          : await client.send(page, { method: 'POST', headers: { ...form, cookie: agent.cookieHeader() }, body: pairs });
        assertSafe(answer);
      }), { numRuns: runs });
  },

  async 'the registration API, with operator injection and malformed JSON'(client, runs) {
    const contentType = fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'application/json; charset=utf-16',
      'text/plain', 'application/x-www-form-urlencoded', 'application/json;;;', 'application/problem+json', 'multipart/form-data; boundary=x');
    const authorization = fc.oneof(fc.constant(BACKEND_BASIC), fc.constant(undefined), headerValue);
    await fc.assert(fc.asyncProperty(registrationBody, contentType, authorization, async (body, type, auth) => {
      assertSafe(await client.send('/api/accounts', {
        method: 'POST',
        headers: { 'content-type': type, ...(auth !== undefined && { authorization: auth }) },
        body: typeof body === 'string' ? body : Buffer.from(body),
      }));
    }), { numRuns: runs });
  },

  async 'the admin API with an admin token, with operator injection, wrong types and malformed JSON'(client, runs) {
    const token = await adminToken(client.server);
    const admin = `${client.server.issuer}/admin/api`;
    const sub = (await (await fetch(`${admin}/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: `admin.property.${Date.now()}@example.com`, password: 'a long enough admin-made passphrase' }),
    })).json() as { sub: string }).sub;
    const writes = fc.constantFrom('POST /users', `PATCH /users/${sub}`, 'POST /clients', 'POST /resources', `PUT /users/${sub}/roles/x`, `POST /clients/x/tls-subjects`);
    const field = fc.constantFrom('email', 'password', 'name', 'roles', 'disabled', 'email_verified', 'kind', 'auth', 'redirect_uris', 'resources', 'jwks', 'audience',
      'scopes', 'scope_roles', 'format', 'ttl', 'type', 'value', '$where', '__proto__', 'constructor', 'email.$gt');
    const body = fc.oneof(registrationBody, fc.dictionary(field, jsonish).map((value) => JSON.stringify(value)));
    const reads = fc.tuple(fc.constantFrom('/users', '/clients', '/resources', '/audit-events', `/users/${sub}/sessions`, `/users/${sub}/grants`),
      encodedPairs(['limit', 'cursor', 'email', 'sub', 'client_id', 'type', 'since', 'until', 'source', 'q'])).map(([route, query]) => `${route}?${query}`);
    await fc.assert(fc.asyncProperty(fc.oneof(writes.map((write) => ({ write })), reads.map((read) => ({ read }))), body, async (target, sent) => {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      if ('read' in target) {
        assertSafe(await client.send(`/admin/api${target.read}`, { headers }));
        return;
      }
      const [method, route] = target.write.split(' ') as [string, string];
      assertSafe(await client.send(`/admin/api${route}`, { method, headers, body: typeof sent === 'string' ? sent : Buffer.from(sent) }));
    }), { numRuns: runs });
  },

  async 'malformed cookies and odd headers on the pages and the account area'(client, runs) {
    const config = await discover(client.server.issuer);
    const authorization = (await authorizationRequest(config)).url;
    const targets = ['/', `${authorization.pathname}${authorization.search}`, '/interaction/abc', '/account', '/account/signin', '/account/callback?code=x&state=y',
      '/password/forgot', '/.well-known/openid-configuration', '/jwks', '/healthz', '/session/end'];
    const cookieNames = ['_session', '_session.sig', '_session.legacy', '_interaction', '_interaction.sig', '_interaction_resume', 'tessera.csrf', 'tessera.csrf.sig',
      'tessera.account', 'tessera.account.sig', '__proto__', 'a'];
    const cookie = fc.array(fc.tuple(fc.constantFrom(...cookieNames), headerValue), { maxLength: 6 }).map((pairs) => pairs.map(([name, value]) => `${name}=${value}`).join('; '));
    const headers = fc.record({
      cookie,
      accept: headerValue,
      'accept-language': headerValue,
      'x-request-id': headerValue,
      'x-forwarded-for': headerValue,
      'x-forwarded-proto': headerValue,
      'user-agent': headerValue,
    }, { requiredKeys: ['cookie'] });
    await fc.assert(fc.asyncProperty(fc.constantFrom(...targets), headers, fc.constantFrom('GET', 'POST'), async (target, sent, method) => {
      assertSafe(await client.send(target, { method, headers: { ...sent, ...(method === 'POST' && form) }, ...(method === 'POST' && { body: 'a=b' }) }));
    }), { numRuns: runs });
  },

  async 'header injection with CR, LF, NUL and raw bytes in the request line and headers'(client, runs) {
    const rawByte = fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x00, 0x7f, 0xff, 0x09, 0x20, 0x3a), fc.integer({ min: 0, max: 255 }));
    const rawText = fc.array(rawByte, { maxLength: 40 }).map((bytes) => Buffer.from(bytes));
    const injection = fc.constantFrom('\r\nSet-Cookie: injected=1', '\nX-Injected: 1', '\r\n\r\nGET /admin HTTP/1.1', '\u0000', '\r', ' \r\n folded');
    const piece = fc.oneof(rawText, injection.map((text) => Buffer.from(text, 'latin1')));
    await fc.assert(fc.asyncProperty(fc.constantFrom('/', '/auth', '/token', '/healthz', '/interaction/x/login'), piece, piece, fc.constantFrom('GET', 'POST', 'G\rET', 'GET /x'),
      async (target, inPath, inHeader, method) => {
        const request = Buffer.concat([
          Buffer.from(`${method} ${target}`, 'latin1'), inPath, Buffer.from(' HTTP/1.1\r\nHost: localhost\r\nX-Test: ', 'latin1'),
          inHeader, Buffer.from('\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'latin1'),
        ]);
        const answer = await client.sendRaw(request);
        assertSafe(answer);
        if (/\r\nSet-Cookie: injected=1|\r\nX-Injected: 1/i.test(answer.body)) throw new Error(`a header was injected into the answer: ${answer.body.slice(0, 300)}`);
      }), { numRuns: runs });
  },
};

/** An access token for the admin API, from a machine client made with `tessera clients create` (one per server). */
const adminTokens = new WeakMap<TestServer, Promise<string>>();
function adminToken(server: TestServer): Promise<string> {
  let token = adminTokens.get(server);
  if (!token) {
    token = (async () => {
      const admin = `${server.issuer}/admin/api`;
      const machine = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv,
        ['clients', 'create', '--name', 'Property robot', '--grant', 'client_credentials', '--resource', admin, '--scope', 'admin', '--role', 'admin']);
      const response = await fetch(`${server.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${btoa(`${machine.client_id}:${machine.client_secret}`)}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin', resource: admin }),
      });
      if (response.status !== 200) throw new Error(`no admin token: ${response.status} ${await response.text()}`);
      return (await response.json() as { access_token: string }).access_token;
    })();
    adminTokens.set(server, token);
  }
  return token;
}

// ---------------------------------------------------------------------------------------------

interface Lane {
  server: TestServer;
  lane?: MongoLane;
}

const lanes = {
  sqlite: { runs: 150, started: undefined as Promise<Lane> | undefined },
  mongodb: { runs: 30, started: undefined as Promise<Lane> | undefined },
};

function laneOf(kind: keyof typeof lanes): Promise<Lane> {
  lanes[kind].started ??= (async () => {
    if (kind === 'sqlite') return { server: await startTestServer({ clients }) };
    const lane = await startMongoLane();
    return { lane, server: await startTestServer({ clients, env: { MONGODB_URI: lane.uri } }) };
  })();
  return lanes[kind].started;
}

test.after.always(async () => {
  for (const { started } of Object.values(lanes)) {
    if (!started) continue;
    const { server, lane } = await started;
    await server.close();
    removeDir(server.dataDir);
    await lane?.stop();
  }
});

for (const kind of Object.keys(lanes) as Array<keyof typeof lanes>) {
  for (const [name, property] of Object.entries(properties)) {
    test(`${kind}: no 5xx and no leak from ${name}`, async (t) => {
      const { server } = await laneOf(kind);
      const client = new Client(server);
      await property(client, lanes[kind].runs);
      t.log(`statuses: ${client.summary()}`);
      // And the server is still there.
      t.is((await fetch(`${server.url}/healthz`)).status, 200);
    });
  }
}
