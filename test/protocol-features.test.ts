/**
 * Protocol features are slices (src/oidc/features/): the lists Tessera keeps beside oidc-provider
 * are derived from them, and a path a slice marks as client-authenticating gets the checks that
 * promise (expired certificates refused, failures rate-limited) through the real server.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';
import type { Configuration } from 'oidc-provider';

import { VIEWS_DIR } from '../src/app.ts';
import { createCertificateAuthority } from '../src/domain/pki.ts';
import { mergeFragments } from '../src/oidc/configuration.ts';
import {
  CLIENT_AUTHENTICATING_PATHS, INTERACTION_ROUTES, mtlsEndpointAliases, PROTOCOL_PATHS, PUBLIC_DOCUMENT_PATHS, SLICES,
} from '../src/oidc/features/index.ts';
import { staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer } from './helpers/server.ts';
import { request } from './helpers/tls-client.ts';

test('the protocol fast path, the client-authenticating paths and the public documents are the paths they always were, plus the device authorization endpoint', (t) => {
  t.deepEqual([...PROTOCOL_PATHS].sort(), ['/.well-known/openid-configuration', '/device/auth', '/jwks', '/me', '/request', '/token', '/token/introspection', '/token/revocation']);
  t.deepEqual([...CLIENT_AUTHENTICATING_PATHS].sort(), ['/device/auth', '/request', '/token', '/token/introspection', '/token/revocation']);
  t.deepEqual([...PUBLIC_DOCUMENT_PATHS].sort(), ['/.well-known/openid-configuration', '/jwks']);
});

test('mtls_endpoint_aliases name every endpoint a certificate-using client calls, on the mTLS listener', (t) => {
  t.deepEqual(mtlsEndpointAliases('https://mtls.example.com'), {
    token_endpoint: 'https://mtls.example.com/token',
    userinfo_endpoint: 'https://mtls.example.com/me',
    introspection_endpoint: 'https://mtls.example.com/token/introspection',
    revocation_endpoint: 'https://mtls.example.com/token/revocation',
    pushed_authorization_request_endpoint: 'https://mtls.example.com/request',
    device_authorization_endpoint: 'https://mtls.example.com/device/auth',
  });
});

test('offline_access asks for consent at the authorization endpoint, at the device page, and when an interaction resumes', (t) => {
  t.deepEqual([...INTERACTION_ROUTES].sort(), ['authorization', 'code_verification', 'device_resume', 'resume']);
});

test('every slice has a name of its own, every path belongs to one slice, and every page a slice renders exists', (t) => {
  const names = SLICES.map((slice) => slice.name);
  t.is(new Set(names).size, names.length);
  const paths = SLICES.flatMap((slice) => (slice.paths ?? []).map((entry) => entry.path));
  t.is(new Set(paths).size, paths.length);
  for (const page of SLICES.flatMap((slice) => slice.pages ?? [])) {
    t.true(existsSync(path.join(VIEWS_DIR, `${page}.ejs`)), `views/${page}.ejs`);
  }
});

test('two slices setting the same feature or setting stop the merge instead of one silently winning', (t) => {
  const base = { features: { userinfo: { enabled: true } }, discovery: { claim_types_supported: ['normal'] } } as Configuration;
  const merged = mergeFragments(base, [
    { name: 'dpop', fragment: { features: { dPoP: { enabled: true } } } },
    { name: 'extra discovery', fragment: { discovery: { service_documentation: 'https://example.com' } } },
  ]);
  t.deepEqual(merged.features, { userinfo: { enabled: true }, dPoP: { enabled: true } });
  t.deepEqual(merged.discovery, { claim_types_supported: ['normal'], service_documentation: 'https://example.com' });

  t.throws(() => mergeFragments(base, [{ name: 'again', fragment: { features: { userinfo: { enabled: false } } } }]), {
    message: 'protocol features: again sets features.userinfo, which the base configuration sets already',
  });
  t.throws(() => mergeFragments({} as Configuration, [
    { name: 'first', fragment: { rotateRefreshToken: true } },
    { name: 'second', fragment: { rotateRefreshToken: false } },
  ]), { message: 'protocol features: second sets rotateRefreshToken, which first sets already' });
});

test('at every path a slice marks as client-authenticating, an expired certificate is refused and failed requests are rate-limited', async (t) => {
  const paths = [...CLIENT_AUTHENTICATING_PATHS];
  const clients = paths.map((_, index) => staticClient({ client_id: `rp-${index}`, grant_types: ['authorization_code', 'client_credentials'] }));
  const server = await startTestServer({
    clients,
    env: { CLIENT_CERT_HEADER: 'x-ssl-client-cert', TRUSTED_PROXIES: '127.0.0.0/8', RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '1/60', RATE_LIMIT_TOKEN_FAILURES_PER_IP: '100/60' },
  });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const expired = await createCertificateAuthority({ subject: 'CN=expired', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  const basic = (clientId: string, secret: string) => `Basic ${btoa(`${clientId}:${secret}`)}`;
  for (const [index, endpoint] of paths.entries()) {
    const clientId = `rp-${index}`;
    const withExpired = await request(`${server.url}${endpoint}`, {
      form: { client_id: clientId, token: 'x', grant_type: 'client_credentials' },
      headers: { 'x-ssl-client-cert': encodeURIComponent(expired.cert) },
    });
    t.is(withExpired.status, 401, `${endpoint}: ${withExpired.text}`);
    t.is(withExpired.json<{ error_description: string }>().error_description, 'the client certificate is expired or not yet valid', endpoint);

    const form = { token: 'x', grant_type: 'client_credentials', response_type: 'code', redirect_uri: String(clients[index]!.redirect_uris) };
    const failed = await request(`${server.url}${endpoint}`, { form, headers: { authorization: basic(clientId, 'wrong secret') } });
    t.is(failed.status, 401, `${endpoint}: ${failed.text}`);
    const blocked = await request(`${server.url}${endpoint}`, { form, headers: { authorization: basic(clientId, String(clients[index]!.client_secret)) } });
    t.is(blocked.status, 429, `${endpoint}: blocked before the right secret is checked: ${blocked.text}`);
  }
});
