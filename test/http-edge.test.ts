/**
 * The edge of the HTTP chain (red-team review, issue #10): what a request says about the host it
 * was sent to, the proxy it came through and the spelling of its path cannot steer Tessera.
 * Real servers on loopback; "other addresses" are real source addresses in 127.0.0.0/8.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import test from 'ava';

import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate } from '../src/domain/pki.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

interface Sent {
  method?: string;
  /** The request target exactly as written on the wire (no dot-segment or case normalisation). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Source address in 127.0.0.0/8, to be a particular peer (a proxy, a client, an attacker). */
  from?: string;
  tls?: { ca: string; cert?: string; key?: string };
}

function send(port: number, sent: Sent): Promise<Answer> {
  const transport = sent.tls ? https : http;
  const body = typeof sent.body === 'string' ? Buffer.from(sent.body) : sent.body;
  return new Promise((resolve, reject) => {
    const outgoing = transport.request({
      host: '127.0.0.1',
      port,
      method: sent.method ?? (body ? 'POST' : 'GET'),
      path: sent.path,
      headers: { host: `localhost:${port}`, ...(body && { 'content-length': String(body.length) }), ...sent.headers },
      agent: false,
      ...(sent.from && { localAddress: sent.from }),
      ...(sent.tls && { ca: sent.tls.ca, cert: sent.tls.cert, key: sent.tls.key, servername: 'localhost' }),
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function started(t: { teardown(fn: () => Promise<void>): void }, options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const server = await startTestServer(options);
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  return server;
}

// Tessera behind a TLS-terminating proxy at 127.0.0.2, published as https://id.example.test.
const ISSUER = 'https://id.example.test';
const PROXIED = { ISSUER, BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '127.0.0.2' };

test('a request for another host gets 421, and never a document naming that host', async (t) => {
  const server = await started(t, { env: PROXIED });
  const asked: Array<[string, Sent]> = [];
  for (const target of ['/.well-known/openid-configuration', '/jwks', '/', '/interaction/x/login', '/account', '/auth?client_id=x']) {
    asked.push([`Host: evil.example ${target}`, { path: target, headers: { host: 'evil.example' } }]);
    asked.push([`X-Forwarded-Host: evil.example via the proxy ${target}`, { path: target, from: '127.0.0.2', headers: { host: '10.0.0.5:3000', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } }]);
  }
  asked.push(['POST /token for evil.example', { path: '/token', headers: { ...FORM, host: 'evil.example' }, body: 'grant_type=client_credentials' }]);
  asked.push(['a host that only starts like the issuer\'s', { path: '/.well-known/openid-configuration', headers: { host: 'id.example.test.evil.example' } }]);
  for (const [what, sent] of asked) {
    const answer = await send(server.port, sent);
    t.is(answer.status, 421, what);
    t.notRegex(answer.text, /evil/, what);
    t.not(answer.headers['cache-control'], 'public, max-age=300, stale-while-revalidate=60', what);
  }
  const json = await send(server.port, { path: '/.well-known/openid-configuration', headers: { host: 'evil.example' } });
  t.deepEqual(JSON.parse(json.text), { error: 'misdirected', error_description: 'This server does not answer for that host.' });
});

test('a request target in absolute form names the host: another host gets 421, and discovery never names the target\'s host', async (t) => {
  const server = await started(t);
  const own = `localhost:${server.port}`;
  for (const target of ['/.well-known/openid-configuration', '/jwks', '/interaction/x/login', '/token', '/TOKEN']) {
    const answer = await send(server.port, { path: `http://evil.example${target}`, headers: { host: own } });
    t.is(answer.status, 421, `http://evil.example${target}`);
    t.notRegex(answer.text, /evil/);
  }
  const asterisk = await send(server.port, { method: 'OPTIONS', path: '*' });
  t.is(asterisk.status, 421, 'an asterisk-form target names no host of ours');

  // RFC 9112 section 3.2.2: the target's host wins over Host, so this is a request for Tessera.
  const ours = await send(server.port, { path: `http://${own}/.well-known/openid-configuration`, headers: { host: 'evil.example' } });
  t.is(ours.status, 200);
  t.is(JSON.parse(ours.text).jwks_uri, `${server.issuer}/jwks`);
  t.notRegex(ours.text, /evil/);
  const variant = await send(server.port, { path: `http://${own}/.well-known/OpenID-Configuration`, headers: { host: own } });
  t.is(variant.status, 404, 'path variants are refused in absolute form too');
  t.is((await send(server.port, { path: 'http://10.0.0.5/healthz', headers: { host: own } })).status, 200, 'health probes still answer');
});

test('health probes answer whatever host they name, as orchestrators probe by address', async (t) => {
  const server = await started(t, { env: PROXIED });
  t.is((await send(server.port, { path: '/healthz', headers: { host: '10.0.0.5:3000' } })).status, 200);
  t.is((await send(server.port, { path: '/readyz', headers: { host: '10.0.0.5:3000' } })).status, 200);
  t.is((await send(server.port, { path: '/metrics', headers: { host: '10.0.0.5:3000' } })).status, 200);
});

test('X-Forwarded-Host and X-Forwarded-Proto from a peer that is not a trusted proxy are ignored', async (t) => {
  const server = await started(t, { env: PROXIED });
  const answer = await send(server.port, {
    path: '/.well-known/openid-configuration',
    from: '127.0.0.1',
    headers: { host: 'id.example.test', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http', forwarded: 'host=evil.example;proto=http' },
  });
  t.is(answer.status, 200, answer.text);
  t.notRegex(answer.text, /evil|http:\/\//);
  const discovery = JSON.parse(answer.text) as Record<string, string>;
  t.is(discovery.issuer, ISSUER);
  t.is(discovery.token_endpoint, `${ISSUER}/token`);
  t.is(discovery.jwks_uri, `${ISSUER}/jwks`);
});

test('through a trusted proxy the issuer\'s forwarded host works, and discovery names the issuer whatever else the proxy says', async (t) => {
  const server = await started(t, { env: PROXIED });
  for (const forwarded of [
    { 'x-forwarded-host': 'id.example.test', 'x-forwarded-proto': 'https' },
    // nginx's $host drops the port and keeps the case the client sent; a proxy may say http.
    { 'x-forwarded-host': 'ID.Example.TEST:443', 'x-forwarded-proto': 'http' },
  ]) {
    const answer = await send(server.port, { path: '/.well-known/openid-configuration', from: '127.0.0.2', headers: { host: '10.0.0.5:3000', ...forwarded } });
    t.is(answer.status, 200, answer.text);
    const discovery = JSON.parse(answer.text) as Record<string, unknown>;
    t.is(discovery.issuer, ISSUER);
    for (const [name, value] of Object.entries(discovery)) {
      if (typeof value === 'string' && /^https?:/.test(value)) t.true(value === ISSUER || value.startsWith(`${ISSUER}/`), `${name}: ${value}`);
    }
    t.is(answer.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', 'https, as the issuer is');
  }
});

test('discovery names ISSUER also when the Host header names another port of the issuer\'s host', async (t) => {
  const server = await started(t);
  const answer = await send(server.port, { path: '/.well-known/openid-configuration', headers: { host: 'localhost:1' } });
  t.is(answer.status, 200, answer.text);
  t.is((JSON.parse(answer.text) as { token_endpoint: string }).token_endpoint, `${server.issuer}/token`);
});

test('the host of MTLS_URL is served too; discovery there still names the issuer\'s endpoints, and the aliases MTLS_URL\'s', async (t) => {
  const server = await started(t, { env: { ...PROXIED, MTLS_URL: 'https://mtls.id.example.test', CLIENT_CERT_HEADER: 'x-ssl-client-cert' } });
  const sents: Sent[] = [
    { path: '/.well-known/openid-configuration', from: '127.0.0.2', headers: { host: '10.0.0.5:3000', 'x-forwarded-host': 'mtls.id.example.test' } },
    { path: '/.well-known/openid-configuration', headers: { host: 'mtls.id.example.test' } },
  ];
  for (const sent of sents) {
    const answer = await send(server.port, sent);
    t.is(answer.status, 200, answer.text);
    const discovery = JSON.parse(answer.text) as { token_endpoint: string; mtls_endpoint_aliases: { token_endpoint: string } };
    t.is(discovery.token_endpoint, `${ISSUER}/token`);
    t.is(discovery.mtls_endpoint_aliases.token_endpoint, 'https://mtls.id.example.test/token');
  }
  t.is((await send(server.port, { path: '/jwks', headers: { host: 'mtls.evil.example' } })).status, 421);
});

test('behind a declared proxy, X-Forwarded-For from a peer that is not a trusted proxy does not change the address rate limits count', async (t) => {
  const server = await started(t, { env: { ...PROXIED, RATE_LIMIT_TOKEN_FAILURES_PER_IP: '2/300' } });
  const fail = (forwardedFor: string) => send(server.port, {
    path: '/token',
    from: '127.0.0.1',
    headers: { ...FORM, host: 'id.example.test', 'x-forwarded-for': forwardedFor },
    body: 'grant_type=client_credentials&client_id=nobody&client_secret=wrong',
  });
  t.is((await fail('198.51.100.1')).status, 401);
  t.is((await fail('198.51.100.2')).status, 401);
  t.is((await fail('198.51.100.3')).status, 429, 'a forged X-Forwarded-For does not make a fresh address');
});

// Item 2: one spelling per protocol path. oidc-provider's router ignores letter case and one trailing
// slash, and clients resolve dot segments (`/token/.` leaves fetch as `/token/`).
const VARIANTS: Record<string, string[]> = {
  '/token': ['/token/', '/TOKEN', '/Token/', '/token/./', '/token/x/..'],
  '/token/introspection': ['/token/introspection/', '/TOKEN/Introspection'],
  '/token/revocation': ['/Token/Revocation', '/token/revocation/'],
  '/request': ['/REQUEST', '/request/'],
};
/** What fetch (WHATWG URL) makes of a path before sending it. */
const asSent = (target: string) => new URL(target, 'http://x').pathname;

test('a client over its limit of failed requests is refused at every spelling of every client-authenticating path', async (t) => {
  const server = await started(t, { env: { RATE_LIMIT_TOKEN_FAILURES_PER_IP: '2/300', RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '2/300' } });
  const bad = { headers: FORM, body: 'grant_type=client_credentials&client_id=nobody&client_secret=wrong' };
  for (let i = 0; i < 2; i += 1) t.is((await send(server.port, { path: '/token', ...bad })).status, 401);
  for (const [canonical, variants] of Object.entries(VARIANTS)) {
    t.is((await send(server.port, { path: canonical, ...bad })).status, 429, canonical);
    for (const variant of variants) {
      for (const target of new Set([variant, asSent(variant)])) {
        const answer = await send(server.port, { path: target, ...bad });
        t.is(answer.status, 404, `${target}: ${answer.text}`);
      }
    }
  }
});

test('every protocol route has one spelling; parameters inside a route keep their case', async (t) => {
  const server = await started(t);
  for (const target of ['/AUTH?client_id=x', '/auth/?client_id=x', '/Jwks', '/jwks/', '/.well-known/OpenID-Configuration', '/.well-known/openid-configuration/', '/ME', '/session/end/', '/Session/End/Confirm', '/AUTH/SomeUid']) {
    const answer = await send(server.port, { path: target });
    t.is(answer.status, 404, `${target}: ${answer.text.slice(0, 120)}`);
  }
  t.is((await send(server.port, { path: '/jwks' })).status, 200);
  const resume = await send(server.port, { path: '/auth/SomeUnknownMixedCaseUid' });
  t.not(resume.status, 404, 'a route parameter is not a spelling: oidc-provider answers it');
});

test('an expired client certificate gets no token at any spelling of the token endpoint', async (t) => {
  const dir = makeTempDir('tessera-edge-');
  t.teardown(() => removeDir(dir));
  const serverCa = await createCertificateAuthority({ subject: 'CN=Edge Server CA' });
  const serverCert = await issueCertificate(serverCa, { subject: 'CN=localhost', sans: { dns: ['localhost'] }, usage: 'server' });
  writeFileSync(path.join(dir, 'server.pem'), serverCert.cert);
  writeFileSync(path.join(dir, 'server-key.pem'), serverCert.key);
  const server = await started(t, { env: { TLS_CERT: path.join(dir, 'server.pem'), TLS_KEY: path.join(dir, 'server-key.pem'), MTLS_PORT: '0' } });
  const day = 86_400_000;
  const expired = await createSelfSignedCertificate({ subject: 'CN=expired-svc', notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) });
  const audience = 'https://edge-api.example.com';
  const clientId = await server.withServices(async ({ clients, resources }) => {
    await resources.create({ audience, scopes: ['read'], format: 'jwt', ttlSeconds: 300 });
    return (await clients.createMachineClient({ name: 'expired', auth: 'self_signed_tls_client_auth', certificates: [expired.cert], resources: { [audience]: ['read'] } })).client_id;
  });
  const mtlsPort = Number(new URL(server.mtlsUrl!).port);
  const tokenAt = (target: string) => send(mtlsPort, {
    path: target,
    headers: { ...FORM, host: new URL(server.mtlsUrl!).host },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, resource: audience, scope: 'read' }).toString(),
    tls: { ca: serverCa.cert, cert: expired.cert, key: expired.key },
  });
  const canonical = await tokenAt('/token');
  t.is(canonical.status, 401, canonical.text);
  t.regex(canonical.text, /expired or not yet valid/);
  for (const variant of VARIANTS['/token']!) {
    for (const target of new Set([variant, asSent(variant)])) {
      const answer = await tokenAt(target);
      t.is(answer.status, 404, `${target}: ${answer.text}`);
      t.notRegex(answer.text, /access_token/, target);
    }
  }
});

// Item 3: a client id is public; failures named with it must not lock the client itself out.
for (const kind of ['sqlite', 'mongodb'] as const) {
  test(`on ${kind}, failed token requests naming a client lock out the address that sent them, not the client`, async (t) => {
    const lane = kind === 'mongodb' ? await startMongoLane() : undefined;
    if (lane) t.teardown(() => lane.stop());
    const server = await started(t, { env: { RATE_LIMIT_TOKEN_FAILURES_PER_IP: '60/300', RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '30/300', ...(lane && { MONGODB_URI: lane.uri }) } });
    const audience = 'https://edge-orders.example.com';
    const client = await server.withServices(async ({ clients, resources }) => {
      await resources.create({ audience, scopes: ['read'], format: 'jwt', ttlSeconds: 300 });
      return clients.createMachineClient({ name: 'victim', auth: 'client_secret_basic', resources: { [audience]: ['read'] } });
    });
    const tokenRequest = (from: string, secret: string) => send(server.port, {
      path: '/token',
      from,
      headers: { ...FORM, authorization: `Basic ${btoa(`${client.client_id}:${secret}`)}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience, scope: 'read' }).toString(),
    });
    const attacker = '127.0.0.3';
    const failures = await Promise.all(Array.from({ length: 30 }, () => tokenRequest(attacker, 'a guessed secret')));
    t.deepEqual([...new Set(failures.map((answer) => answer.status))], [401]);
    t.is((await tokenRequest(attacker, 'another guess')).status, 429, 'guessing from one address is still limited');
    t.is((await tokenRequest(attacker, client.client_secret!)).status, 429, 'from the attacker\'s address, even the right secret waits');

    const rightful = await tokenRequest('127.0.0.4', client.client_secret!);
    t.is(rightful.status, 200, rightful.text);
    t.truthy((JSON.parse(rightful.text) as { access_token?: string }).access_token);
  });
}

// Item 4: a Content-Encoding on a request body is refused with 415, on every surface, never a 500.
test('a request body with a Content-Encoding gets 415 with Accept-Encoding: identity on pages, both APIs and protocol endpoints', async (t) => {
  const server = await started(t);
  const adminAudience = `${server.issuer}/admin/api`;
  const admin = await server.withServices(({ clients }) => clients.createMachineClient({ name: 'edge admin', auth: 'client_secret_basic', resources: { [adminAudience]: ['admin'] }, roles: ['admin'] }));
  const granted = await send(server.port, {
    path: '/token',
    headers: { ...FORM, authorization: `Basic ${btoa(`${admin.client_id}:${admin.client_secret!}`)}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin', resource: adminAudience }).toString(),
  });
  t.is(granted.status, 200, granted.text);
  const adminToken = (JSON.parse(granted.text) as { access_token: string }).access_token;

  const form = 'email=a%40example.com&password=whatever';
  const surfaces: Array<[string, string, Record<string, string>]> = [
    ['/interaction/x/login', form, FORM],
    ['/password/forgot', form, FORM],
    ['/account/password', form, FORM],
    ['/api/accounts', '{"email":"a@example.com"}', { 'content-type': 'application/json' }],
    ['/admin/api/clients', '{"name":"x"}', { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` }],
    ['/token', 'grant_type=client_credentials', FORM],
    ['/token/introspection', 'token=x', FORM],
    ['/request', 'client_id=x', FORM],
  ];
  const seen: string[] = [];
  const expected: string[] = [];
  for (const [target, body, headers] of surfaces) {
    for (const [coding, bytes] of [['gzip', Buffer.from('not gzip at all')], ['deflate', Buffer.from('nor deflate')], ['br', Buffer.from('nor brotli')], ['x-unknown', Buffer.from(body)], ['gzip', gzipSync(body)]] as const) {
      const answer = await send(server.port, { path: target, headers: { ...headers, 'content-encoding': coding }, body: bytes });
      seen.push(`${target} ${coding}: ${answer.status} ${String(answer.headers['accept-encoding'])}`);
      expected.push(`${target} ${coding}: 415 identity`);
    }
  }
  t.deepEqual(seen, expected);
  const plain = await send(server.port, { path: '/token', headers: { ...FORM, 'content-encoding': 'identity' }, body: 'grant_type=client_credentials' });
  t.is(plain.status, 400, 'identity is no encoding: the request reaches the endpoint');
});
