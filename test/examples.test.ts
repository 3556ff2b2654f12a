/**
 * The resource-server kit end to end: Tessera on HTTPS with an mTLS listener, the example machine
 * client getting certificate-bound tokens over real TLS handshakes, and the example API validating
 * them with jose and Tessera's JWKS. Certificates come from a CA made here; nothing is mocked.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';
import * as jose from 'jose';

import { callApi, getToken, mtlsTokenEndpoint, request, TokenError, type ClientTls } from '../examples/machine-client/client.ts';
import { startResourceServer, type RunningResourceServer } from '../examples/resource-server/server.ts';
import { thumbprint } from '../src/domain/certificates.ts';
import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate, type KeyAndCertificate } from '../src/domain/pki.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const AUDIENCE = 'https://orders.example.com';

let dir: string;
let caFile: string;
let server: TestServer;
let api: RunningResourceServer;
let ordersUrl: string;
/** CN=svc,O=Org from the CA: the tls_client_auth client's certificate. */
let svc: ClientTls & { pem: string };
/** Another valid certificate from the same CA, registered to nobody. */
let other: ClientTls;
/** A self-signed certificate registered for the self_signed_tls_client_auth client. */
let selfSigned: ClientTls & { pem: string };
let tlsClientId: string;
let selfSignedClientId: string;

function writePair(name: string, pair: KeyAndCertificate): ClientTls & { pem: string } {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}-key.pem`);
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  return { certFile, keyFile, caFile, pem: pair.cert };
}

test.before(async () => {
  dir = makeTempDir('tessera-examples-');
  const ca = await createCertificateAuthority({ subject: 'CN=Examples Test CA' });
  caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, ca.cert);
  const serverPair = await issueCertificate(ca, { subject: 'CN=localhost', usage: 'server', sans: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  const serverFiles = writePair('server', serverPair);
  svc = writePair('svc', await issueCertificate(ca, { subject: 'CN=svc,O=Org', usage: 'client' }));
  other = writePair('other', await issueCertificate(ca, { subject: 'CN=other,O=Org', usage: 'client' }));
  selfSigned = writePair('self-signed', await createSelfSignedCertificate({ subject: 'CN=self-signed-svc', usage: 'client' }));

  server = await startTestServer({
    env: { TLS_CERT: serverFiles.certFile, TLS_KEY: serverFiles.keyFile, MTLS_PORT: '0', MTLS_CA: caFile },
  });
  ({ tlsClientId, selfSignedClientId } = await server.withServices(async ({ resources, clients }) => {
    await resources.create({ audience: AUDIENCE, name: 'Orders API', scopes: ['orders:read', 'orders:write'], format: 'jwt', ttlSeconds: 300 });
    const byCa = await clients.createMachineClient({
      name: 'svc',
      auth: 'tls_client_auth',
      tlsSubjects: [{ type: 'subject_dn', value: 'CN=svc,O=Org' }],
      resources: { [AUDIENCE]: ['orders:read'] },
    });
    const bySelfSigned = await clients.createMachineClient({
      name: 'self-signed svc',
      auth: 'self_signed_tls_client_auth',
      certificates: [selfSigned.pem],
      resources: { [AUDIENCE]: ['orders:read', 'orders:write'] },
    });
    return { tlsClientId: byCa.client_id, selfSignedClientId: bySelfSigned.client_id };
  }));

  api = await startResourceServer({ issuer: server.issuer, audience: AUDIENCE, port: 0, tls: { cert: serverPair.cert, key: serverPair.key }, caFile });
  ordersUrl = `${api.url}/orders`;
});

test.after.always(async () => {
  await api?.close();
  await server?.close();
  if (server) removeDir(server.dataDir);
  if (dir) removeDir(dir);
});

function svcToken(scope = 'orders:read') {
  return getToken({ issuer: server.issuer, clientId: tlsClientId, resource: AUDIENCE, scope, ...svc });
}

test('discovery sends certificate-using clients to the mTLS listener', async (t) => {
  t.true(server.issuer.startsWith('https://localhost:'));
  t.truthy(server.mtlsUrl);
  t.is(await mtlsTokenEndpoint(server.issuer, caFile), `${server.mtlsUrl}/token`);
});

test('a tls_client_auth client gets an RFC 9068 JWT access token bound to its certificate', async (t) => {
  const token = await svcToken();
  t.is(token.token_type, 'Bearer');
  t.is(token.scope, 'orders:read');
  t.true(token.expires_in > 0 && token.expires_in <= 300);

  const header = jose.decodeProtectedHeader(token.access_token);
  t.is(header.typ, 'at+jwt');
  t.is(header.alg, 'RS256');
  const claims = jose.decodeJwt(token.access_token) as jose.JWTPayload & { client_id?: string; scope?: string; cnf?: Record<string, string> };
  t.is(claims.iss, server.issuer);
  t.is(claims.aud, AUDIENCE);
  t.is(claims.client_id, tlsClientId);
  t.is(claims.sub, tlsClientId, 'RFC 9068: the client is the subject of a client credentials token');
  t.truthy(claims.jti);
  t.is(claims.scope, 'orders:read');
  t.is(claims.cnf?.['x5t#S256'], thumbprint(new X509Certificate(svc.pem)));
});

test('the example API answers a bound token presented with its certificate', async (t) => {
  const { access_token: token } = await svcToken();
  const answer = await callApi(ordersUrl, token, svc);
  t.is(answer.status, 200);
  t.is((answer.body as { caller: string }).caller, tlsClientId);
});

test('the example API refuses a bound token presented without a certificate', async (t) => {
  const { access_token: token } = await svcToken();
  const answer = await callApi(ordersUrl, token, { caFile });
  t.is(answer.status, 401);
  t.regex(String(answer.headers['www-authenticate']), /^Bearer error="invalid_token"/);
});

test('the example API refuses a bound token presented with another valid certificate from the same CA', async (t) => {
  const { access_token: token } = await svcToken();
  const answer = await callApi(ordersUrl, token, other);
  t.is(answer.status, 401);
  t.regex(String(answer.headers['www-authenticate']), /^Bearer error="invalid_token"/);
});

test('the example API answers 403 insufficient_scope when the token lacks the route\'s scope', async (t) => {
  const { access_token: token } = await svcToken();
  const answer = await callApi(ordersUrl, token, svc, { method: 'POST', body: { item: 'tiles' } });
  t.is(answer.status, 403);
  t.regex(String(answer.headers['www-authenticate']), /^Bearer error="insufficient_scope".*scope="orders:write"/);
});

test('a client asking for a scope it was not allowed gets invalid_scope', async (t) => {
  const error = await t.throwsAsync(svcToken('orders:read orders:write'), { instanceOf: TokenError });
  t.is(error?.error, 'invalid_scope');
});

test('a certificate the client is not registered with gets invalid_client', async (t) => {
  const error = await t.throwsAsync(getToken({ issuer: server.issuer, clientId: tlsClientId, resource: AUDIENCE, ...other }), { instanceOf: TokenError });
  t.is(error?.error, 'invalid_client');
});

test('a self_signed_tls_client_auth client gets a bound token the example API accepts with that certificate only', async (t) => {
  const token = await getToken({ issuer: server.issuer, clientId: selfSignedClientId, resource: AUDIENCE, scope: 'orders:read orders:write', ...selfSigned });
  const claims = jose.decodeJwt(token.access_token) as { cnf?: Record<string, string> };
  t.is(claims.cnf?.['x5t#S256'], thumbprint(new X509Certificate(selfSigned.pem)));

  const created = await callApi(ordersUrl, token.access_token, selfSigned, { method: 'POST', body: { item: 'tiles' } });
  t.is(created.status, 201);
  t.is((await callApi(ordersUrl, token.access_token, svc)).status, 401);
});

test('the example API refuses a request without a token, a forged token and an ID-token-like JWT', async (t) => {
  const none = await request(ordersUrl, { caFile });
  t.is(none.status, 401);
  t.is(none.headers['www-authenticate'], 'Bearer');

  const { access_token: token } = await svcToken();
  const [header, payload] = token.split('.');
  const tampered = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
  tampered.scope = 'orders:read orders:write';
  const forged = `${header}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${token.split('.')[2]}`;
  t.is((await callApi(ordersUrl, forged, svc)).status, 401);

  // Signed by a key of our own with the right claims but typ JWT: refused before any key lookup.
  const { privateKey } = await jose.generateKeyPair('RS256');
  const wrongType = await new jose.SignJWT({ client_id: tlsClientId, scope: 'orders:read' })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: jose.decodeProtectedHeader(token).kid! })
    .setIssuer(server.issuer).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m')
    .sign(privateKey);
  t.is((await callApi(ordersUrl, wrongType, svc)).status, 401);
});

test('the example API answers 503, not 401, while Tessera cannot be reached', async (t) => {
  const early = await startResourceServer({ issuer: 'http://127.0.0.1:1', audience: AUDIENCE, port: 0 });
  try {
    const { access_token: token } = await svcToken();
    const answer = await request(`${early.url}/orders`, { headers: { authorization: `Bearer ${token}` } });
    t.is(answer.status, 503);
    t.is(answer.headers['retry-after'], '5');
  } finally {
    await early.close();
  }
});
