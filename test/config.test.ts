/** Configuration is pure logic: environment and files in, a frozen object or one line per problem out. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';

import { ConfigError, loadConfig } from '../src/config.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';

function configDir(clients?: string): string {
  const dir = makeTempDir('tessera-config-');
  mkdirSync(path.join(dir, 'config'));
  if (clients !== undefined) writeFileSync(path.join(dir, 'config', 'clients.json'), clients);
  return dir;
}

test('with no configuration at all the defaults give a development server on port 3000', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  const config = loadConfig({}, dir);
  t.is(config.env, 'development');
  t.is(config.port, 3000);
  t.is(config.issuer, 'http://localhost:3000');
  t.is(config.dataDir, path.join(dir, 'data'));
  t.is(config.mongodbUri, undefined);
  t.deepEqual(config.argon2, { memoryKiB: 7_168, timeCost: 5, parallelism: 1 });
  t.is(config.refreshReuseGraceSeconds, 0);
  t.deepEqual(config.staticClients, []);
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.ttl));
});

test('the issuer follows PORT unless ISSUER is given, and loses a trailing slash', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  t.is(loadConfig({ PORT: '4000' }, dir).issuer, 'http://localhost:4000');
  t.is(loadConfig({ ISSUER: 'https://id.example.com/' }, dir).issuer, 'https://id.example.com');
});

test('each invalid variable is reported on its own line and nothing starts', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  const error = t.throws(() => loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', MONGODB_URI: 'postgres://x', ARGON2_MEMORY_KIB: '10' }, dir), { instanceOf: ConfigError });
  const lines = error!.message.split('\n');
  t.is(lines.length, 4);
  t.true(lines.every((line) => line.startsWith('Configuration error: ')));
  t.regex(error!.message, /^Configuration error: PORT: /m);
  t.regex(error!.message, /^Configuration error: LOG_LEVEL: /m);
  t.regex(error!.message, /^Configuration error: MONGODB_URI: must start with mongodb:\/\//m);
  t.regex(error!.message, /^Configuration error: ARGON2_MEMORY_KIB: /m);
});

test('production refuses a generated secret and an http issuer', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  const error = t.throws(() => loadConfig({ NODE_ENV: 'production' }, dir), { instanceOf: ConfigError });
  t.deepEqual(error!.problems, [
    'TESSERA_SECRET: required when NODE_ENV=production (generated secrets are for development only)',
    'ISSUER: must be https when NODE_ENV=production (set BEHIND_TLS_PROXY=true if a TLS proxy fronts Tessera)',
  ]);
  const secret = 's'.repeat(40);
  t.notThrows(() => loadConfig({ NODE_ENV: 'production', TESSERA_SECRET: secret, ISSUER: 'https://id.example.com' }, dir));
  t.notThrows(() => loadConfig({ NODE_ENV: 'production', TESSERA_SECRET: secret, BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '10.0.0.2' }, dir));
  t.throws(() => loadConfig({ TESSERA_SECRET: 'too short' }, dir), { message: /TESSERA_SECRET: must be at least 32 characters/ });
});

test('a clients file that is not JSON, or not a list of clients, stops startup with the file named', (t) => {
  const broken = configDir('{ not json');
  const wrongShape = configDir('[{"redirect_uris": ["not a url"]}]');
  t.teardown(() => {
    removeDir(broken);
    removeDir(wrongShape);
  });
  t.throws(() => loadConfig({}, broken), { message: /clients\.json: not valid JSON/ });
  const error = t.throws(() => loadConfig({}, wrongShape), { instanceOf: ConfigError });
  t.true(error!.problems.some((line) => /clients\.json: 0\.client_id/.test(line)));
  t.true(error!.problems.some((line) => /clients\.json: 0\.redirect_uris\.0/.test(line)));
});

test('empty variables count as unset, as compose files often leave them', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  t.is(loadConfig({ PORT: '', MONGODB_URI: '' }, dir).port, 3000);
});

test('a static client with metadata oidc-provider rejects stops server startup with the client named', async (t) => {
  const error = await t.throwsAsync(startTestServer({ clients: [{ client_id: 'broken', client_secret: 'x'.repeat(40), redirect_uris: ['http://localhost:9/cb'], grant_types: ['password'] }] }), { instanceOf: ConfigError });
  t.regex(error!.message, /^Configuration error: .*clients\.json: client broken: .*grant_types/m);
});

test('a static tls_client_auth client with an unparsable subject DN stops startup with one line naming it', async (t) => {
  const client = { client_id: 'mtls-bad', redirect_uris: ['https://rp.example.com/cb'], token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=svc;O=Org' };
  const error = await t.throwsAsync(startTestServer({ clients: [client] }), { instanceOf: ConfigError });
  t.regex(error!.message, /^Configuration error: .*clients\.json: client mtls-bad: CN=svc;O=Org is not a distinguished name .*unescaped ;/m);
});

test('in production a static client whose jwks_uri is on loopback stops startup with one line naming it', async (t) => {
  const client = { client_id: 'local-keys', redirect_uris: ['https://rp.example.com/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://127.0.0.1:8443/jwks' };
  const env = { NODE_ENV: 'production', TESSERA_SECRET: 'a production secret of at least thirty-two characters', BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '127.0.0.1' };
  const error = await t.throwsAsync(startTestServer({ clients: [client], env }), { instanceOf: ConfigError });
  t.regex(error!.message, /^Configuration error: .*clients\.json: client local-keys: jwks_uri: https:\/\/127\.0\.0\.1:8443\/jwks points at a loopback or private address/m);
});

test('in production a static client whose backchannel_logout_uri is on loopback stops startup with one line naming it', async (t) => {
  const client = { client_id: 'local-logout', client_secret: 'x'.repeat(40), redirect_uris: ['https://rp.example.com/cb'], backchannel_logout_uri: 'https://localhost:8443/logout' };
  const env = { NODE_ENV: 'production', TESSERA_SECRET: 'a production secret of at least thirty-two characters', BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '127.0.0.1' };
  const error = await t.throwsAsync(startTestServer({ clients: [client], env }), { instanceOf: ConfigError });
  t.regex(error!.message, /^Configuration error: .*clients\.json: client local-logout: backchannel_logout_uri: https:\/\/localhost:8443\/logout points at a loopback or private address/m);
});

test('BEHIND_TLS_PROXY without TRUSTED_PROXIES stops startup in production, and trusts only loopback elsewhere', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  const secret = 's'.repeat(40);
  const error = t.throws(() => loadConfig({ NODE_ENV: 'production', TESSERA_SECRET: secret, BEHIND_TLS_PROXY: 'true' }, dir), { instanceOf: ConfigError });
  t.deepEqual(error!.problems, ['BEHIND_TLS_PROXY: needs TRUSTED_PROXIES (the proxy\'s addresses) when NODE_ENV=production']);
  t.deepEqual(loadConfig({ BEHIND_TLS_PROXY: 'true' }, dir).tls.trustedProxies, ['127.0.0.0/8', '::1']);
  t.deepEqual(loadConfig({ BEHIND_TLS_PROXY: 'true', TRUSTED_PROXIES: '10.0.0.2, 10.1.0.0/16' }, dir).tls.trustedProxies, ['10.0.0.2', '10.1.0.0/16']);
  t.deepEqual(loadConfig({}, dir).tls.trustedProxies, [], 'without BEHIND_TLS_PROXY nobody is trusted unless listed');
});

test('clients that come by themselves are off by default, and their settings are checked one line per problem', (t) => {
  const dir = configDir();
  t.teardown(() => removeDir(dir));
  const defaults = loadConfig({}, dir).selfRegistration;
  t.is(defaults.mode, 'off');
  t.false(defaults.metadataDocuments);
  t.deepEqual(defaults.scopes, ['openid', 'profile', 'email', 'offline_access']);
  t.is(defaults.unusedDays, 30);

  const error = t.throws(() => loadConfig({
    DYNAMIC_CLIENT_REGISTRATION: 'sometimes',
    CLIENT_ID_METADATA_DOCUMENTS_CACHE_SECONDS: '600/60',
  }, dir), { instanceOf: ConfigError });
  t.is(error!.problems.length, 2);
  t.regex(error!.message, /^Configuration error: DYNAMIC_CLIENT_REGISTRATION: /m);
  t.regex(error!.message, /^Configuration error: CLIENT_ID_METADATA_DOCUMENTS_CACHE_SECONDS: must be MIN\/MAX/m);

  const secret = 's'.repeat(40);
  const combined = t.throws(() => loadConfig({
    NODE_ENV: 'production',
    TESSERA_SECRET: secret,
    ISSUER: 'https://id.example.com',
    DYNAMIC_CLIENT_REGISTRATION_SCOPES: 'openid orders:read',
    CLIENT_ID_METADATA_DOCUMENTS: 'on',
    CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS: 'agents.example.com',
    CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS: 'evil.example.com',
    ALLOW_LOOPBACK_FETCHES: 'true',
  }, dir), { instanceOf: ConfigError });
  t.is(combined!.problems.length, 3);
  t.regex(combined!.message, /^Configuration error: DYNAMIC_CLIENT_REGISTRATION_SCOPES: "orders:read" is not one of/m);
  t.regex(combined!.message, /^Configuration error: CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS and CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS: set one or the other/m);
  t.regex(combined!.message, /^Configuration error: ALLOW_LOOPBACK_FETCHES: refused when NODE_ENV=production/m);

  const on = loadConfig({ DYNAMIC_CLIENT_REGISTRATION: 'open', CLIENT_ID_METADATA_DOCUMENTS: 'on', CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS: 'Agents.example.com, *.tools.example.com' }, dir).selfRegistration;
  t.is(on.mode, 'open');
  t.deepEqual(on.metadataDocumentAllowedHosts, ['agents.example.com', '*.tools.example.com']);
});
