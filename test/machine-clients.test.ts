/**
 * Machine clients (RFC 8705 mTLS, private_key_jwt, client secrets, DPoP, PAR) and resource servers
 * (RFC 8707 resource indicators, RFC 9068 JWT access tokens, RFC 7662 introspection), through real
 * TLS handshakes with certificates made in the test and a real relying-party library.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { thumbprint } from '../src/domain/certificates.ts';
import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate, type KeyAndCertificate } from '../src/domain/pki.ts';
import { authorizationRequest, authorize, discover, newPerson, RP_CALLBACK, signIn, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { request } from './helpers/tls-client.ts';
import { UserAgent } from './helpers/user-agent.ts';

const API = 'https://api.example.com';
const OPAQUE_API = 'https://opaque.example.com';
const HEADER = 'x-ssl-client-cert';

interface Fixture {
  dir: string;
  serverCa: KeyAndCertificate;
  clientCa: KeyAndCertificate;
  otherCa: KeyAndCertificate;
  /** Tessera with HTTPS and the mTLS listener. */
  tls: TestServer;
  /** Tessera on plain http behind a "proxy" at 127.0.0.2 that forwards certificates in a header. */
  proxied: TestServer;
  /** tls_client_auth machine client (CN=svc,O=Test) allowed orders:read at both APIs. */
  svc: { clientId: string; cert: KeyAndCertificate };
  /** self_signed_tls_client_auth machine client. */
  selfSigned: { clientId: string; cert: KeyAndCertificate };
  /** The same tls_client_auth client, registered on the proxied server. */
  proxiedSvcId: string;
  /** Certificate of the static tls_client_auth relying party `mtls-rp`. */
  rpCert: KeyAndCertificate;
}

let f: Fixture;

function thumbprintOf(cert: KeyAndCertificate): string {
  return thumbprint(new X509Certificate(cert.cert));
}

async function setUpResources(server: TestServer) {
  await server.withServices(async ({ resources }) => {
    await resources.create({ audience: API, scopes: ['orders:read', 'orders:write'], format: 'jwt', ttlSeconds: 300 });
    await resources.create({ audience: OPAQUE_API, scopes: ['orders:read'], format: 'opaque', ttlSeconds: 300 });
  });
}

test.before(async () => {
  const dir = makeTempDir('tessera-mtls-');
  const serverCa = await createCertificateAuthority({ subject: 'CN=Test Server CA' });
  const serverCert = await issueCertificate(serverCa, { subject: 'CN=localhost', sans: { dns: ['localhost'], ip: ['127.0.0.1'] }, usage: 'server' });
  const clientCa = await createCertificateAuthority({ subject: 'CN=Test Client CA' });
  const otherCa = await createCertificateAuthority({ subject: 'CN=Other CA' });
  for (const [name, content] of Object.entries({ 'server.pem': serverCert.cert, 'server-key.pem': serverCert.key, 'client-ca.pem': clientCa.cert })) {
    writeFileSync(path.join(dir, name), content);
  }
  const rpCert = await issueCertificate(clientCa, { subject: 'CN=rp,O=Test' });
  const mtlsRp = staticClient({
    client_id: 'mtls-rp',
    client_secret: undefined,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: 'CN=rp,O=Test',
    tls_client_certificate_bound_access_tokens: true,
  });

  const tls = await startTestServer({
    clients: [mtlsRp],
    env: { TLS_CERT: path.join(dir, 'server.pem'), TLS_KEY: path.join(dir, 'server-key.pem'), MTLS_PORT: '0', MTLS_CA: path.join(dir, 'client-ca.pem') },
  });
  const proxied = await startTestServer({
    clients: [staticClient()],
    env: { MTLS_CA: path.join(dir, 'client-ca.pem'), CLIENT_CERT_HEADER: HEADER, TRUSTED_PROXIES: '127.0.0.2' },
  });
  await setUpResources(tls);
  await setUpResources(proxied);

  const svcCert = await issueCertificate(clientCa, { subject: 'CN=svc,O=Test', sans: { dns: ['svc.internal'] } });
  const selfSignedCert = await createSelfSignedCertificate({ subject: 'CN=self-signed-svc' });
  const svcId = await tls.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'svc', auth: 'tls_client_auth', tlsSubjects: [{ type: 'subject_dn', value: 'CN=svc,O=Test' }], resources: { [API]: ['orders:read'], [OPAQUE_API]: ['orders:read'] },
  })).client_id);
  const selfSignedId = await tls.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'self-signed', auth: 'self_signed_tls_client_auth', certificates: [selfSignedCert.cert], resources: { [API]: ['orders:read'] },
  })).client_id);
  const proxiedSvcId = await proxied.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'svc', auth: 'tls_client_auth', tlsSubjects: [{ type: 'subject_dn', value: 'CN=svc,O=Test' }], resources: { [API]: ['orders:read'] },
  })).client_id);
  f = {
    dir, serverCa, clientCa, otherCa, tls, proxied, proxiedSvcId, rpCert,
    svc: { clientId: svcId, cert: svcCert },
    selfSigned: { clientId: selfSignedId, cert: selfSignedCert },
  };
});

test.after.always(async () => {
  await f?.tls.close();
  await f?.proxied.close();
  if (f) {
    removeDir(f.tls.dataDir);
    removeDir(f.proxied.dataDir);
    removeDir(f.dir);
  }
});

/** client_credentials over the mTLS listener. */
function mtlsToken(clientId: string, cert: KeyAndCertificate | undefined, fields: Record<string, string> = {}) {
  return request(`${f.tls.mtlsUrl}/token`, {
    form: { grant_type: 'client_credentials', client_id: clientId, resource: API, scope: 'orders:read', ...fields },
    ...(cert && { cert: cert.cert, key: cert.key }),
    ca: f.serverCa.cert,
  });
}

test('discovery advertises the mTLS listener in mtls_endpoint_aliases and every client authentication method', async (t) => {
  const response = await request(`${f.tls.issuer}/.well-known/openid-configuration`, { ca: f.serverCa.cert });
  const metadata = response.json<Record<string, unknown>>();
  t.is(metadata.issuer, f.tls.issuer);
  t.true(f.tls.issuer.startsWith('https://'));
  const aliases = metadata.mtls_endpoint_aliases as Record<string, string>;
  t.is(aliases.token_endpoint, `${f.tls.mtlsUrl}/token`);
  t.is(aliases.userinfo_endpoint, `${f.tls.mtlsUrl}/me`);
  t.is(aliases.introspection_endpoint, `${f.tls.mtlsUrl}/token/introspection`);
  for (const method of ['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt', 'client_secret_basic']) {
    t.true((metadata.token_endpoint_auth_methods_supported as string[]).includes(method), method);
  }
  t.true(metadata.tls_client_certificate_bound_access_tokens as boolean);
  t.truthy(metadata.dpop_signing_alg_values_supported);
  t.truthy(metadata.pushed_authorization_request_endpoint);
  t.regex(response.headers['strict-transport-security'] ?? '', /max-age=/, 'HSTS over https');
});

test('a tls_client_auth client gets a JWT access token bound to its certificate', async (t) => {
  const response = await mtlsToken(f.svc.clientId, f.svc.cert);
  t.is(response.status, 200, response.text);
  const body = response.json<{ access_token: string; token_type: string; scope: string }>();
  t.is(body.token_type, 'Bearer');
  t.is(body.scope, 'orders:read');
  const header = jose.decodeProtectedHeader(body.access_token);
  t.is(header.typ, 'at+jwt');
  const claims = jose.decodeJwt(body.access_token) as Record<string, unknown>;
  t.is(claims.iss, f.tls.issuer);
  t.is(claims.aud, API);
  t.is(claims.sub, f.svc.clientId);
  t.is(claims.client_id, f.svc.clientId);
  t.is(claims.scope, 'orders:read');
  for (const claim of ['iat', 'exp', 'jti']) t.truthy(claims[claim], claim);
  t.deepEqual(claims.cnf, { 'x5t#S256': thumbprintOf(f.svc.cert) });
});

test('a self_signed_tls_client_auth client gets a token bound to its certificate', async (t) => {
  const response = await mtlsToken(f.selfSigned.clientId, f.selfSigned.cert);
  t.is(response.status, 200, response.text);
  const claims = jose.decodeJwt(response.json<{ access_token: string }>().access_token) as Record<string, unknown>;
  t.deepEqual(claims.cnf, { 'x5t#S256': thumbprintOf(f.selfSigned.cert) });
});

test('the JWT access token verifies against the JWKS as RFC 9068 requires', async (t) => {
  const { access_token: token } = (await mtlsToken(f.svc.clientId, f.svc.cert)).json<{ access_token: string }>();
  const jwks = (await request(`${f.tls.issuer}/jwks`, { ca: f.serverCa.cert })).json<jose.JSONWebKeySet>();
  const { payload, protectedHeader } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks), { issuer: f.tls.issuer, audience: API, typ: 'at+jwt' });
  t.is(protectedHeader.alg, 'RS256');
  t.is(payload.client_id, f.svc.clientId);
});

test('tls_client_auth fails with invalid_client without a certificate, with another CA\'s, with another subject, or with an expired one', async (t) => {
  const fromOtherCa = await issueCertificate(f.otherCa, { subject: 'CN=svc,O=Test' });
  const otherSubject = await issueCertificate(f.clientCa, { subject: 'CN=intruder,O=Test' });
  const expired = await issueCertificate(f.clientCa, { subject: 'CN=svc,O=Test', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  for (const [label, cert] of [['no certificate', undefined], ['another CA', fromOtherCa], ['another subject', otherSubject], ['expired', expired]] as const) {
    const response = await mtlsToken(f.svc.clientId, cert);
    t.is(response.status, 401, label);
    t.is(response.json<{ error: string }>().error, 'invalid_client', label);
  }
});

test('a certificate whose one CN holds an escaped comma does not pass for the client registered as CN=svc,O=Test', async (t) => {
  // Its subject prints as "CN=svc\\,O=Test": one attribute, whose value is the text "svc,O=Test".
  const lookalike = await issueCertificate(f.clientCa, { subject: 'CN=svc\\,O=Test' });
  const refused = await mtlsToken(f.svc.clientId, lookalike);
  t.is(refused.status, 401);
  t.is(refused.json<{ error: string }>().error, 'invalid_client');
  const multiValued = await issueCertificate(f.clientCa, { subject: 'CN=svc+O=Test' });
  t.is((await mtlsToken(f.svc.clientId, multiValued)).status, 401, 'one multi-valued RDN is not two RDNs');
  t.is((await mtlsToken(f.svc.clientId, f.svc.cert)).status, 200, 'the real certificate still does');
});

test('self_signed_tls_client_auth fails with invalid_client for an unregistered or expired certificate', async (t) => {
  const unregistered = await createSelfSignedCertificate({ subject: 'CN=self-signed-svc' });
  const response = await mtlsToken(f.selfSigned.clientId, unregistered);
  t.is(response.status, 401);
  t.is(response.json<{ error: string }>().error, 'invalid_client');

  const expired = await createSelfSignedCertificate({ subject: 'CN=old', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  await f.tls.withServices(({ clients }) => clients.addCertificate(f.selfSigned.clientId, expired.cert));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const stale = await mtlsToken(f.selfSigned.clientId, expired);
  t.is(stale.status, 401);
  t.is(stale.json<{ error: string }>().error, 'invalid_client');
});

test('a client certificate can be rotated without downtime: old and new work side by side, then the old is removed', async (t) => {
  const fresh = await createSelfSignedCertificate({ subject: 'CN=self-signed-svc' });
  const clientId = await f.tls.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'rotating', auth: 'self_signed_tls_client_auth', certificates: [f.selfSigned.cert.cert], resources: { [API]: ['orders:read'] },
  })).client_id);
  await f.tls.withServices(({ clients }) => clients.addCertificate(clientId, fresh.cert));
  t.is((await mtlsToken(clientId, f.selfSigned.cert)).status, 200);
  t.is((await mtlsToken(clientId, fresh)).status, 200);
  await f.tls.withServices(({ clients }) => clients.removeCertificate(clientId, thumbprintOf(f.selfSigned.cert)));
  // Running servers drop their client cache within STORE_POLL_SECONDS (1 s in tests).
  let status = 200;
  for (let attempt = 0; attempt < 20 && status === 200; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = (await mtlsToken(clientId, f.selfSigned.cert)).status;
  }
  t.is(status, 401);
  t.is((await mtlsToken(clientId, fresh)).status, 200);
});

test('a machine client that names no scope gets every scope it is allowed at the resource', async (t) => {
  const response = await request(`${f.tls.mtlsUrl}/token`, {
    form: { grant_type: 'client_credentials', client_id: f.svc.clientId, resource: API },
    cert: f.svc.cert.cert, key: f.svc.cert.key, ca: f.serverCa.cert,
  });
  t.is(response.status, 200, response.text);
  t.is(response.json<{ scope: string }>().scope, 'orders:read');
});

test('behind a proxy, MTLS_URL publishes the proxy\'s mTLS host as mtls_endpoint_aliases', async (t) => {
  const proxy = await startTestServer({ env: { MTLS_URL: 'https://mtls.id.example.com', CLIENT_CERT_HEADER: HEADER, TRUSTED_PROXIES: '127.0.0.2' } });
  t.teardown(async () => {
    await proxy.close();
    removeDir(proxy.dataDir);
  });
  const metadata = await (await fetch(`${proxy.issuer}/.well-known/openid-configuration`)).json() as { mtls_endpoint_aliases?: Record<string, string> };
  t.is(metadata.mtls_endpoint_aliases?.token_endpoint, 'https://mtls.id.example.com/token');
});

test('a client only gets the scopes it was allowed: asking for more fails with invalid_scope', async (t) => {
  const response = await mtlsToken(f.svc.clientId, f.svc.cert, { scope: 'orders:read orders:write' });
  t.is(response.status, 400);
  t.is(response.json<{ error: string }>().error, 'invalid_scope');
  const unknownResource = await mtlsToken(f.svc.clientId, f.svc.cert, { resource: 'https://elsewhere.example.com' });
  t.is(unknownResource.status, 400);
  t.is(unknownResource.json<{ error: string }>().error, 'invalid_target');
});

test('a machine client asking for openid or another OpenID Connect scope gets invalid_scope, not a token without it', async (t) => {
  for (const scope of ['openid orders:read', 'orders:read offline_access', 'openid']) {
    const response = await mtlsToken(f.svc.clientId, f.svc.cert, { scope });
    t.is(response.status, 400, scope);
    t.like(response.json<{ error: string; error_description: string }>(), { error: 'invalid_scope', error_description: 'OpenID Connect scopes need a signed-in person, and the client credentials grant has none' }, scope);
  }
  // svc is allowed two resources, so without `resource` no resource server is chosen for it.
  const withoutResource = await request(`${f.tls.mtlsUrl}/token`, {
    form: { grant_type: 'client_credentials', client_id: f.svc.clientId, scope: 'openid' }, cert: f.svc.cert.cert, key: f.svc.cert.key, ca: f.serverCa.cert,
  });
  t.is(withoutResource.status, 400, withoutResource.text);
  t.is(withoutResource.json<{ error: string }>().error, 'invalid_scope');
});

test('a bound access token is refused at userinfo without its certificate and accepted with it', async (t) => {
  const { rpCert } = f;
  const agent = new UserAgent({ ca: f.serverCa.cert });
  const person = newPerson();
  const metadata = (await request(`${f.tls.issuer}/.well-known/openid-configuration`, { ca: f.serverCa.cert })).json<Record<string, unknown>>();
  const config = new oidc.Configuration(metadata as oidc.ServerMetadata, 'mtls-rp', {}, oidc.TlsClientAuth());
  const pending = await authorizationRequest(config, { scope: 'openid email' });
  const callback = await authorize(agent, pending, person, { register: true });
  const exchange = await request(`${f.tls.mtlsUrl}/token`, {
    form: { grant_type: 'authorization_code', client_id: 'mtls-rp', code: callback.searchParams.get('code')!, redirect_uri: RP_CALLBACK, code_verifier: pending.verifier },
    cert: rpCert.cert, key: rpCert.key, ca: f.serverCa.cert,
  });
  t.is(exchange.status, 200, exchange.text);
  const { access_token: token } = exchange.json<{ access_token: string }>();

  const without = await request(`${f.tls.mtlsUrl}/me`, { headers: { authorization: `Bearer ${token}` }, ca: f.serverCa.cert });
  t.is(without.status, 401);
  const otherCert = await issueCertificate(f.clientCa, { subject: 'CN=rp,O=Test' });
  const wrong = await request(`${f.tls.mtlsUrl}/me`, { headers: { authorization: `Bearer ${token}` }, cert: otherCert.cert, key: otherCert.key, ca: f.serverCa.cert });
  t.is(wrong.status, 401, 'a different certificate with the same subject does not do');
  const withCert = await request(`${f.tls.mtlsUrl}/me`, { headers: { authorization: `Bearer ${token}` }, cert: rpCert.cert, key: rpCert.key, ca: f.serverCa.cert });
  t.is(withCert.status, 200, withCert.text);
  t.is(withCert.json<{ email: string }>().email, person.email);
});

test('a refresh token issued over mTLS works only with the same certificate', async (t) => {
  const { rpCert } = f;
  const metadata = (await request(`${f.tls.issuer}/.well-known/openid-configuration`, { ca: f.serverCa.cert })).json<Record<string, unknown>>();
  const config = new oidc.Configuration(metadata as oidc.ServerMetadata, 'mtls-rp', {}, oidc.TlsClientAuth());
  const pending = await authorizationRequest(config, { scope: 'openid offline_access' });
  const callback = await authorize(new UserAgent({ ca: f.serverCa.cert }), pending, newPerson(), { register: true });
  const token = (fields: Record<string, string>, cert: KeyAndCertificate) => request(`${f.tls.mtlsUrl}/token`, {
    form: { client_id: 'mtls-rp', ...fields }, cert: cert.cert, key: cert.key, ca: f.serverCa.cert,
  });
  const exchange = await token({ grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: RP_CALLBACK, code_verifier: pending.verifier }, rpCert);
  t.is(exchange.status, 200, exchange.text);
  const { refresh_token: refreshToken } = exchange.json<{ refresh_token: string }>();
  t.truthy(refreshToken);

  const sameSubjectOtherKey = await issueCertificate(f.clientCa, { subject: 'CN=rp,O=Test' });
  const stolen = await token({ grant_type: 'refresh_token', refresh_token: refreshToken }, sameSubjectOtherKey);
  t.is(stolen.status, 400);
  t.is(stolen.json<{ error: string }>().error, 'invalid_grant');
  const rightful = await token({ grant_type: 'refresh_token', refresh_token: refreshToken }, rpCert);
  t.is(rightful.status, 200, rightful.text);
});

test('introspection by the resource server reports the binding; other clients learn nothing; revocation ends the token', async (t) => {
  const rsClient = await f.tls.withServices(async ({ clients }) => clients.createResourceServerClient(OPAQUE_API, 'Opaque API'));
  const token = (await mtlsToken(f.svc.clientId, f.svc.cert, { resource: OPAQUE_API })).json<{ access_token: string }>().access_token;
  t.is(token.split('.').length, 1, 'an opaque token');
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  const introspect = (authorization: string) => request(`${f.tls.issuer}/token/introspection`, { form: { token }, headers: { authorization }, ca: f.serverCa.cert });
  const answer = (await introspect(basic(rsClient.client_id, rsClient.client_secret!))).json<Record<string, unknown>>();
  t.true(answer.active as boolean);
  t.is(answer.client_id, f.svc.clientId);
  t.is(answer.scope, 'orders:read');
  t.is(answer.aud, OPAQUE_API);
  t.is(answer.sub, f.svc.clientId);
  t.is(answer.token_type, 'Bearer');
  t.truthy(answer.exp);
  t.truthy(answer.iat);
  t.deepEqual(answer.cnf, { 'x5t#S256': thumbprintOf(f.svc.cert) });

  const stranger = await f.tls.withServices(async ({ resources }) => (await resources.create({ audience: 'https://stranger.example.com', scopes: ['x'] })).client);
  const denied = (await introspect(basic(stranger.client_id, stranger.client_secret!))).json<Record<string, unknown>>();
  t.deepEqual(denied, { active: false });

  const revoke = await request(`${f.tls.issuer}/token/revocation`, { form: { token }, headers: { authorization: basic(rsClient.client_id, rsClient.client_secret!) }, ca: f.serverCa.cert });
  t.is(revoke.status, 200, revoke.text);
  t.deepEqual((await introspect(basic(rsClient.client_id, rsClient.client_secret!))).json(), { active: false });
});

test('a certificate header is believed from a trusted proxy and ignored from anywhere else', async (t) => {
  const clientId = f.proxiedSvcId;
  const form = { grant_type: 'client_credentials', client_id: clientId, resource: API, scope: 'orders:read' };
  const headers = { [HEADER]: encodeURIComponent(f.svc.cert.cert) };
  const spoofed = await request(`${f.proxied.url}/token`, { form, headers, localAddress: '127.0.0.1' });
  t.is(spoofed.status, 401, 'not from a trusted proxy');
  t.is(spoofed.json<{ error: string }>().error, 'invalid_client');

  const viaProxy = await request(`${f.proxied.url}/token`, { form, headers, localAddress: '127.0.0.2' });
  t.is(viaProxy.status, 200, viaProxy.text);
  const claims = jose.decodeJwt(viaProxy.json<{ access_token: string }>().access_token) as Record<string, unknown>;
  t.deepEqual(claims.cnf, { 'x5t#S256': thumbprintOf(f.svc.cert) });
});

test('Envoy\'s X-Forwarded-Client-Cert is understood from a trusted proxy', async (t) => {
  const envoy = await startTestServer({ env: { MTLS_CA: path.join(f.dir, 'client-ca.pem'), CLIENT_CERT_HEADER: 'x-forwarded-client-cert', TRUSTED_PROXIES: '127.0.0.0/8' } });
  t.teardown(async () => {
    await envoy.close();
    removeDir(envoy.dataDir);
  });
  await setUpResources(envoy);
  const clientId = await envoy.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'svc', auth: 'tls_client_auth', tlsSubjects: [{ type: 'san_dns', value: 'svc.internal' }], resources: { [API]: ['orders:read'] },
  })).client_id);
  const xfcc = `By=spiffe://cluster/envoy;Hash=abc;Cert="${encodeURIComponent(f.svc.cert.cert)}";Subject="CN=svc,O=Test";DNS=svc.internal`;
  const response = await request(`${envoy.url}/token`, {
    form: { grant_type: 'client_credentials', client_id: clientId, scope: 'orders:read' },
    headers: { 'x-forwarded-client-cert': xfcc },
  });
  t.is(response.status, 200, response.text);
  const claims = jose.decodeJwt(response.json<{ access_token: string }>().access_token) as Record<string, unknown>;
  t.is(claims.aud, API, 'the single allowed resource is the default');
});

test('private_key_jwt authenticates with a signed assertion, and a replayed or wrongly signed assertion is refused', async (t) => {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), alg: 'ES256', use: 'sig' };
  const clientId = await f.proxied.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'jwt-svc', auth: 'private_key_jwt', jwks: { keys: [jwk] }, resources: { [API]: ['orders:read'] },
  })).client_id);
  const config = await oidc.discovery(new URL(f.proxied.issuer), clientId, {}, oidc.PrivateKeyJwt(privateKey), { execute: [oidc.allowInsecureRequests] });
  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource: API });
  t.is((jose.decodeJwt(tokens.access_token) as Record<string, unknown>).client_id, clientId);

  const assertion = await new jose.SignJWT({})
    .setProtectedHeader({ alg: 'ES256' }).setIssuer(clientId).setSubject(clientId).setAudience(f.proxied.issuer)
    .setJti(crypto.randomUUID()).setIssuedAt().setExpirationTime('1m').sign(privateKey);
  const form = { grant_type: 'client_credentials', scope: 'orders:read', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
  t.is((await request(`${f.proxied.url}/token`, { form })).status, 200);
  const replay = await request(`${f.proxied.url}/token`, { form });
  t.is(replay.status, 401);
  t.is(replay.json<{ error: string }>().error, 'invalid_client');

  const { privateKey: otherKey } = await jose.generateKeyPair('ES256');
  const forged = await new jose.SignJWT({})
    .setProtectedHeader({ alg: 'ES256' }).setIssuer(clientId).setSubject(clientId).setAudience(f.proxied.issuer)
    .setJti(crypto.randomUUID()).setIssuedAt().setExpirationTime('1m').sign(otherKey);
  const refused = await request(`${f.proxied.url}/token`, { form: { ...form, client_assertion: forged } });
  t.is(refused.status, 401);
  t.is(refused.json<{ error: string }>().error, 'invalid_client');
});

test('client_secret_basic works with the shown secret and refuses a wrong one, and the secret is not stored in plaintext', async (t) => {
  const created = await f.proxied.withServices(({ clients }) => clients.createMachineClient({ name: 'secret-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } }));
  const config = await oidc.discovery(new URL(f.proxied.issuer), created.client_id, {}, oidc.ClientSecretBasic(created.client_secret!), { execute: [oidc.allowInsecureRequests] });
  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read' });
  t.is((jose.decodeJwt(tokens.access_token) as Record<string, unknown>).aud, API);

  const wrong = await request(`${f.proxied.url}/token`, {
    form: { grant_type: 'client_credentials', scope: 'orders:read' },
    headers: { authorization: `Basic ${Buffer.from(`${created.client_id}:not-the-secret`).toString('base64')}` },
  });
  t.is(wrong.status, 401);
  t.is(wrong.json<{ error: string }>().error, 'invalid_client');

  const database = new DatabaseSync(path.join(f.proxied.dataDir, 'tessera.db'), { readOnly: true });
  t.teardown(() => database.close());
  const stored = database.prepare('SELECT metadata FROM clients WHERE client_id = ?').get(created.client_id) as { metadata: string } | undefined;
  t.truthy(stored);
  t.false(stored!.metadata.includes(created.client_secret!));
});

test('a client_credentials request with a JWT access token writes nothing to the store', async (t) => {
  // A server of its own: the other tests in this file write to theirs concurrently.
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  await setUpResources(server);
  const created = await server.withServices(({ clients }) => clients.createMachineClient({ name: 'quiet-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } }));
  const opaqueClient = await server.withServices(({ clients }) => clients.createMachineClient({ name: 'opaque-svc', auth: 'client_secret_basic', resources: { [OPAQUE_API]: ['orders:read'] } }));
  const config = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.ClientSecretBasic(created.client_secret!), { execute: [oidc.allowInsecureRequests] });
  const opaque = await oidc.discovery(new URL(server.issuer), opaqueClient.client_id, {}, oidc.ClientSecretBasic(opaqueClient.client_secret!), { execute: [oidc.allowInsecureRequests] });
  await oidc.clientCredentialsGrant(config, { scope: 'orders:read' }); // warm the client cache

  const database = new DatabaseSync(path.join(server.dataDir, 'tessera.db'), { readOnly: true });
  t.teardown(() => database.close());
  // data_version moves whenever another connection commits a change to the database file.
  const version = () => (database.prepare('PRAGMA data_version').get() as { data_version: number }).data_version;
  const counts = () => database.prepare("SELECT (SELECT count(*) FROM oidc) AS oidc, (SELECT count(*) FROM clients) AS clients, (SELECT group_concat(name || '=' || value) FROM revisions) AS revisions").get();
  const [versionBefore, countsBefore] = [version(), counts()];
  for (let i = 0; i < 20; i += 1) await oidc.clientCredentialsGrant(config, { scope: 'orders:read' });
  t.is(version(), versionBefore);
  t.deepEqual(counts(), countsBefore);

  // The same measurement does see writes: an opaque token is stored.
  await oidc.clientCredentialsGrant(opaque, { scope: 'orders:read' });
  t.not(version(), versionBefore);
});

test('DPoP binds tokens to the client\'s key: with the proof userinfo answers, as a plain bearer token it is refused', async (t) => {
  const server = f.proxied;
  const client = staticClient();
  const config = await discover(server.issuer, client);
  const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  const pending = await authorizationRequest(config, { scope: 'openid email' });
  const callback = await authorize(new UserAgent(), pending, newPerson(), { register: true });
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce }, undefined, { DPoP: dpop });
  t.is(tokens.token_type, 'dpop');
  const info = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck, { DPoP: dpop });
  t.truthy(info.email);
  const bearer = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.is(bearer.status, 401);
});

test('a client registered to require DPoP cannot get a token without a proof', async (t) => {
  const created = await f.proxied.withServices(({ clients }) => clients.createMachineClient({ name: 'dpop-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] }, requireDpop: true }));
  const config = await oidc.discovery(new URL(f.proxied.issuer), created.client_id, {}, oidc.ClientSecretBasic(created.client_secret!), { execute: [oidc.allowInsecureRequests] });
  const refused = await t.throwsAsync(oidc.clientCredentialsGrant(config, { scope: 'orders:read' }));
  t.is((refused as oidc.ResponseBodyError).error, 'invalid_grant');
  const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read' }, { DPoP: dpop });
  const claims = jose.decodeJwt(tokens.access_token) as { cnf?: { jkt?: string } };
  t.truthy(claims.cnf?.jkt);
});

test('pushed authorization requests work, and a client that requires PAR is refused a plain authorization request', async (t) => {
  const created = await f.proxied.withServices(({ clients }) => clients.createRelyingParty({ name: 'PAR RP', redirectUris: [RP_CALLBACK], requirePar: true }));
  const config = await discover(f.proxied.issuer, staticClient({ client_id: created.client_id, client_secret: created.client_secret }));
  t.true(config.serverMetadata().require_pushed_authorization_requests !== true, 'PAR is optional server-wide');

  const plain = await authorizationRequest(config);
  const response = await fetch(plain.url, { redirect: 'manual' });
  const location = new URL(response.headers.get('location') ?? 'http://x/');
  t.is(location.searchParams.get('error'), 'invalid_request');

  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: RP_CALLBACK, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state,
  });
  t.truthy(url.searchParams.get('request_uri'));
  const callback = await authorize(new UserAgent(), { url, verifier, state, nonce: '' }, newPerson(), { register: true });
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
  t.truthy(tokens.id_token);
});

test('an RP without resources keeps getting opaque userinfo tokens, and asks for an API only through the person\'s consent', async (t) => {
  const config = await discover(f.proxied.issuer);
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  t.is(tokens.access_token.split('.').length, 1);
  // RFC 8707 across the code flow (README, "Resources across the code flow"): not refused, but sent
  // to sign in and consent, where the person decides.
  const pending = await authorizationRequest(config, { resource: API, scope: 'openid orders:read' });
  const response = await fetch(pending.url, { redirect: 'manual' });
  const location = new URL(response.headers.get('location')!, f.proxied.issuer);
  t.is(location.searchParams.get('error'), null);
  t.regex(location.pathname, /^\/interaction\//);
});
