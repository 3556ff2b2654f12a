/**
 * The machine-client side of the `tessera` command line: resource servers, client_credentials
 * clients with each authentication method, certificate rotation and the local PKI. As in
 * cli.test.ts, commands run in this process through the CLI's entry point (runCommand) on a
 * temporary installation (cli.test.ts covers the bin/tessera process itself), and effects are
 * checked through a second invocation, the domain services or a running server.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import * as jose from 'jose';

import { loadConfig } from '../src/config.ts';
import { chainsTo, subjectMatches, thumbprint } from '../src/domain/certificates.ts';
import { clientSecretMatches } from '../src/domain/clients.ts';
import { createSelfSignedCertificate } from '../src/domain/pki.ts';
import { cliInstallation, eventually, runCli, singleErrorLine } from './helpers/cli.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';

interface ListedClient {
  client_id: string;
  client_name: string;
  source: string;
  token_endpoint_auth_method: string;
  grant_types: string[];
  thumbprints?: string[];
  tls_subjects?: Array<{ type: string; value: string }>;
  tessera_resources?: Record<string, string[]>;
  resource_server?: string;
  metadata: Record<string, unknown>;
}

const ORDERS = 'https://orders.example.com';
const BILLING = 'https://billing.example.com';

/** Two resource servers most tests use: orders (read, write) and billing (read, pay). */
async function withResources(json: <T>(args: string[]) => Promise<T>): Promise<void> {
  await json(['resources', 'create', '--audience', ORDERS, '--scope', 'orders:read', '--scope', 'orders:write', '--scope', 'read']);
  await json(['resources', 'create', '--audience', BILLING, '--scope', 'billing:pay', '--scope', 'read']);
}

/** The CLI against a running server's store, its --json answer parsed; a failure throws with its stderr. */
function jsonCli(env: Parameters<typeof runCli>[0]) {
  return async <T>(args: string[]): Promise<T> => {
    const result = await runCli(env, [...args, '--json']);
    if (result.code !== 0) throw new Error(`tessera ${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  };
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

test('tessera --help lists the resources, clients certs and pki commands, and clients create --help shows both forms', async (t) => {
  const { cli } = cliInstallation(t);
  const usage = await cli(['--help']);
  t.is(usage.code, 0);
  for (const command of ['resources create', 'resources list', 'resources delete', 'clients certs add', 'clients certs remove', 'pki init', 'pki issue', 'pki server-cert']) {
    t.true(usage.stdout.includes(command), `usage mentions ${command}`);
  }
  const create = await cli(['clients', 'create', '--help']);
  t.is(create.code, 0);
  t.regex(create.stdout, /^Usage: tessera clients create --name NAME --redirect-uri URI/);
  t.regex(create.stdout, /^ +tessera clients create --name NAME --grant client_credentials .*--resource URI --scope S/m);
  for (const option of ['--auth METHOD', '--tls-subject-dn DN', '--tls-san-email EMAIL', '--cert PATH.pem', '--jwks PATH.json', '--jwks-uri URL', '--require-dpop', '--require-par']) {
    t.true(create.stdout.includes(option), `help shows ${option}`);
  }
});

test('resources create --json prints the audience, scopes, format, ttl and its client\'s secret once; list and delete follow', async (t) => {
  const { cli, json, withServices } = cliInstallation(t);
  const created = await cli(['resources', 'create', '--audience', ORDERS, '--scope', 'orders:read', '--scope', 'orders:write', '--format', 'opaque', '--ttl', '600', '--name', 'Orders', '--json']);
  t.is(created.code, 0, created.stderr);
  t.is(created.stderr, '');
  const output = JSON.parse(created.stdout) as Record<string, unknown>;
  t.deepEqual(Object.keys(output), ['audience', 'scopes', 'format', 'ttl', 'client_id', 'client_secret']);
  t.like(output, { audience: ORDERS, scopes: ['orders:read', 'orders:write'], format: 'opaque', ttl: 600 });
  t.regex(String(output.client_secret), /^[A-Za-z0-9_-]{43}$/);

  const defaults = await json<Record<string, unknown>>(['resources', 'create', '--audience', BILLING, '--scope', 'billing:pay']);
  t.like(defaults, { format: 'jwt', ttl: 300, signing_alg: 'RS256' });

  const listed = await cli(['resources', 'list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  t.deepEqual(JSON.parse(listed.stdout), [
    { audience: ORDERS, name: 'Orders', scopes: ['orders:read', 'orders:write'], format: 'opaque', ttl: 600, source: 'store', client_id: output.client_id },
    { audience: BILLING, scopes: ['billing:pay'], format: 'jwt', ttl: 300, signing_alg: 'RS256', source: 'store', client_id: defaults.client_id },
  ]);
  t.false(listed.stdout.includes(String(output.client_secret)));
  t.regex((await cli(['resources', 'list'])).stdout, /^AUDIENCE\s+SOURCE\s+FORMAT/);

  // The resource server's own client is listed as such, without its secret.
  const clients = await json<ListedClient[]>(['clients', 'list']);
  t.like(clients.find((client) => client.client_id === output.client_id), { resource_server: ORDERS, grant_types: [], token_endpoint_auth_method: 'client_secret_basic' });
  const metadata = await withServices(({ clients: service }) => service.findMetadata(String(output.client_id)));
  t.true(clientSecretMatches(String(metadata?.client_secret), String(output.client_secret)));

  // Deleting the resource server deletes its introspection client too.
  const deleted = await cli(['resources', 'delete', ORDERS]);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual((await json<Array<{ audience: string }>>(['resources', 'list'])).map((resource) => resource.audience), [BILLING]);
  t.false((await json<ListedClient[]>(['clients', 'list'])).some((client) => client.client_id === output.client_id));
  const again = await cli(['resources', 'delete', ORDERS]);
  t.is(again.code, 1);
  t.is(singleErrorLine(again), `tessera: no resource server ${ORDERS}`);
});

test('resources create refuses bad input and writes nothing', async (t) => {
  const { cli, json } = cliInstallation(t);
  await json(['resources', 'create', '--audience', ORDERS, '--scope', 'read']);
  const refused: [string[], number, RegExp][] = [
    [['--audience', 'not a uri', '--scope', 'read'], 1, /is not an absolute URI/],
    [['--audience', 'https://api.example.com#x', '--scope', 'read'], 1, /must not contain a fragment/],
    [['--audience', 'https://api.example.com', '--scope', 'openid'], 1, /OpenID Connect scope/],
    [['--audience', 'https://api.example.com', '--scope', 'read', '--ttl', '0'], 1, /lifetime must be between 1 and 86400/],
    [['--audience', ORDERS, '--scope', 'read'], 1, /already exists/],
    [['--audience', 'https://api.example.com', '--scope', 'read', '--ttl', 'soon'], 2, /--ttl must be a whole number/],
    [['--audience', 'https://api.example.com', '--scope', 'read', '--format', 'xml'], 2, /--format must be jwt or opaque/],
    [['--audience', 'https://api.example.com'], 2, /needs --scope S/],
    [['--audience', 'https://api.example.com', '--scope', 'read', '--signing-alg', 'HS256'], 2, /--signing-alg must be RS256, PS256, ES256, EdDSA, not "HS256"/],
    [['--audience', 'https://api.example.com', '--scope', 'read', '--signing-alg', 'ES256', '--format', 'opaque'], 2, /--signing-alg applies to JWT access tokens only/],
  ];
  const results = await Promise.all(refused.map(([args]) => cli(['resources', 'create', ...args, '--json'])));
  for (const [index, [args, code, message]] of refused.entries()) {
    const result = results[index]!;
    t.is(result.code, code, args.join(' '));
    t.is(result.stdout, '');
    t.regex(singleErrorLine(result), message);
  }
  t.is((await json<unknown[]>(['resources', 'list'])).length, 1);
  t.is((await json<unknown[]>(['clients', 'list'])).length, 1, 'only the first resource server\'s client');
});

test('resources create --signing-alg sets the alg of the JWT access tokens for that API, each verifying against the JWKS; RS256 stays the default', async (t) => {
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const cli = jsonCli(server.cliEnv);
  const algs = [undefined, 'RS256', 'PS256', 'ES256', 'EdDSA'] as const;
  const audience = (alg: string | undefined) => `https://${(alg ?? 'default').toLowerCase()}.example.com`;
  for (const alg of algs) {
    const created = await cli<{ signing_alg: string }>(['resources', 'create', '--audience', audience(alg), '--scope', 'read', ...(alg ? ['--signing-alg', alg] : [])]);
    t.is(created.signing_alg, alg ?? 'RS256');
  }
  const machine = await cli<{ client_id: string; client_secret: string }>([
    'clients', 'create', '--name', 'Batch', '--grant', 'client_credentials', ...algs.flatMap((alg) => ['--resource', audience(alg)]), '--scope', 'read',
  ]);
  const listed = await cli<Array<{ audience: string; signing_alg?: string }>>(['resources', 'list']);
  t.deepEqual(listed.map((resource) => resource.signing_alg), ['RS256', 'RS256', 'PS256', 'ES256', 'EdDSA']);
  const jwks = jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  for (const alg of algs) {
    const response = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(machine.client_id, machine.client_secret) },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience(alg), scope: 'read' }),
    });
    t.is(response.status, 200, alg);
    const { access_token: token } = (await response.json()) as { access_token: string };
    const expected = alg ?? 'RS256';
    t.is(jose.decodeProtectedHeader(token).alg, expected);
    // Only the expected algorithm is accepted: the token verifies against the published key of its family.
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, { issuer: server.issuer, audience: audience(alg), algorithms: [expected], typ: 'at+jwt' });
    t.is(protectedHeader.alg, expected);
    t.is(payload.client_id, machine.client_id);
  }
});

test('a client_secret_basic machine client gets a token and the resource server\'s client introspects it on a running server', async (t) => {
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const cli = jsonCli(server.cliEnv);
  const resource = await cli<{ client_id: string; client_secret: string }>(['resources', 'create', '--audience', ORDERS, '--scope', 'orders:read', '--format', 'opaque']);
  // --auth client_secret_basic is the default; naming it changes nothing.
  const machine = await cli<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'Batch', '--grant', 'client_credentials', '--resource', ORDERS, '--scope', 'orders:read']);
  t.deepEqual(Object.keys(machine), ['client_id', 'client_secret']);

  const post = (endpoint: string, authorization: string, form: Record<string, string>) =>
    fetch(`${server.url}${endpoint}`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  const issued = await eventually(async () => {
    const response = await post('/token', basic(machine.client_id, machine.client_secret), { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' });
    return response.status === 200 ? (await response.json()) as { access_token: string; scope: string } : undefined;
  });
  t.truthy(issued, 'the server issued a token to the client the CLI created');
  t.is(issued?.scope, 'orders:read');

  const introspection = await post('/token/introspection', basic(resource.client_id, resource.client_secret), { token: issued?.access_token ?? '' });
  t.is(introspection.status, 200);
  t.like(await introspection.json(), { active: true, client_id: machine.client_id, aud: ORDERS, scope: 'orders:read' });

  const wrongSecret = await post('/token/introspection', basic(resource.client_id, machine.client_secret), { token: issued?.access_token ?? '' });
  t.is(wrongSecret.status, 401);
});

test('clients create --grant client_credentials --auth tls_client_auth registers every subject given and the resources', async (t) => {
  const { cli, json } = cliInstallation(t);
  await withResources(json);
  const created = await cli([
    'clients', 'create', '--name', 'Svc', '--grant', 'client_credentials', '--auth', 'tls_client_auth',
    '--tls-subject-dn', 'CN=svc,O=Org', '--tls-san-dns', 'svc.example.com', '--tls-san-uri', 'spiffe://example.com/svc',
    '--tls-san-ip', '10.0.0.7', '--tls-san-email', 'svc@example.com', '--resource', ORDERS, '--scope', 'orders:read', '--json',
  ]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stderr, '');
  const { client_id: clientId, ...rest } = JSON.parse(created.stdout) as { client_id: string };
  t.deepEqual(rest, {}, 'no secret for a certificate-authenticated client');

  const listed = (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === clientId);
  t.like(listed, {
    client_name: 'Svc',
    token_endpoint_auth_method: 'tls_client_auth',
    grant_types: ['client_credentials'],
    tessera_resources: { [ORDERS]: ['orders:read'] },
  });
  t.deepEqual(listed?.tls_subjects, [
    { type: 'subject_dn', value: 'CN=svc,O=Org' },
    { type: 'san_dns', value: 'svc.example.com' },
    { type: 'san_uri', value: 'spiffe://example.com/svc' },
    { type: 'san_ip', value: '10.0.0.7' },
    { type: 'san_email', value: 'svc@example.com' },
  ]);
  t.like(listed?.metadata, { tls_client_auth_subject_dn: 'CN=svc,O=Org', tls_client_certificate_bound_access_tokens: true });
  t.false('dpop_bound_access_tokens' in (listed?.metadata ?? {}));
  t.false('client_secret' in (listed?.metadata ?? {}));

  const human = await cli(['clients', 'list']);
  t.regex(human.stdout, new RegExp(`${clientId}\\s+store\\s+tls_client_auth\\s+client_credentials\\s+Svc\\s+${ORDERS} \\(orders:read\\)`));
});

test('clients create --auth self_signed_tls_client_auth registers each --cert by its x5t#S256 thumbprint', async (t) => {
  const { json, file } = cliInstallation(t);
  await withResources(json);
  const first = await createSelfSignedCertificate({ subject: 'CN=svc-1' });
  const second = await createSelfSignedCertificate({ subject: 'CN=svc-2' });
  const created = await json<Record<string, string>>([
    'clients', 'create', '--name', 'Self', '--grant', 'client_credentials', '--auth', 'self_signed_tls_client_auth',
    '--cert', file('one.pem', first.cert), '--cert', file('two.pem', second.cert), '--resource', ORDERS, '--scope', 'orders:write',
  ]);
  t.deepEqual(Object.keys(created), ['client_id']);
  const listed = (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === created.client_id);
  t.like(listed, { token_endpoint_auth_method: 'self_signed_tls_client_auth', grant_types: ['client_credentials'], tessera_resources: { [ORDERS]: ['orders:write'] } });
  t.deepEqual(listed?.thumbprints, [thumbprint(new X509Certificate(first.cert)), thumbprint(new X509Certificate(second.cert))]);
  t.false(JSON.stringify(listed).includes('PRIVATE KEY'));
});

test('clients create --auth private_key_jwt takes a public JWK set file or a JWKS URI', async (t) => {
  const { json, file } = cliInstallation(t);
  await withResources(json);
  const { publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'svc-key-1', alg: 'ES256' };
  const inline = await json<Record<string, string>>([
    'clients', 'create', '--name', 'Jwt', '--grant', 'client_credentials', '--auth', 'private_key_jwt', '--jwks', file('jwks.json', JSON.stringify({ keys: [jwk] })),
    '--resource', ORDERS, '--scope', 'orders:read',
  ]);
  t.deepEqual(Object.keys(inline), ['client_id']);
  const remote = await json<Record<string, string>>([
    'clients', 'create', '--name', 'Jwt remote', '--grant', 'client_credentials', '--auth', 'private_key_jwt', '--jwks-uri', 'https://svc.example.com/jwks.json',
    '--resource', ORDERS, '--scope', 'orders:read',
  ]);
  const listed = await json<ListedClient[]>(['clients', 'list']);
  const byId = (id: string | undefined) => listed.find((client) => client.client_id === id);
  t.like(byId(inline.client_id), { token_endpoint_auth_method: 'private_key_jwt', metadata: { jwks: { keys: [jwk] } } });
  t.like(byId(remote.client_id), { token_endpoint_auth_method: 'private_key_jwt', metadata: { jwks_uri: 'https://svc.example.com/jwks.json' } });
});

test('with several --resource values each --scope goes to every resource that offers it', async (t) => {
  const { cli, json } = cliInstallation(t);
  await withResources(json);
  const created = await json<{ client_id: string; client_secret: string }>([
    'clients', 'create', '--name', 'Both', '--grant', 'client_credentials', '--auth', 'client_secret_basic',
    '--resource', ORDERS, '--resource', BILLING, '--scope', 'read', '--scope', 'orders:write', '--scope', 'billing:pay',
  ]);
  t.regex(created.client_secret, /^[A-Za-z0-9_-]{43}$/);
  const listed = (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === created.client_id);
  t.deepEqual(listed?.tessera_resources, { [ORDERS]: ['read', 'orders:write'], [BILLING]: ['read', 'billing:pay'] });
  t.is(listed?.metadata.client_secret, '(hidden)');
  t.false(JSON.stringify(listed).includes(created.client_secret));

  const human = await cli(['clients', 'list']);
  t.false(human.stdout.includes(created.client_secret));
});

test('in production a jwks_uri on a loopback or private address is refused; outside production it is allowed', async (t) => {
  const { cli, env, json } = cliInstallation(t);
  await withResources(json);
  const production = { ...env, NODE_ENV: 'production', TESSERA_SECRET: 'a production secret of at least thirty-two characters', ISSUER: 'https://id.example.com' };
  const create = (uri: string) => ['clients', 'create', '--name', 'Remote keys', '--grant', 'client_credentials', '--auth', 'private_key_jwt', '--jwks-uri', uri, '--resource', ORDERS, '--scope', 'read'];
  for (const uri of ['https://127.0.0.1/jwks', 'https://localhost:8443/jwks', 'https://[::ffff:7f00:1]/jwks', 'https://169.254.169.254/latest/jwks']) {
    const refused = await cli(create(uri), { env: production });
    t.is(refused.code, 1, uri);
    t.regex(singleErrorLine(refused), /points at a loopback or private address, which is refused in production/, uri);
  }
  t.is((await cli([...create('https://keys.example.com/jwks'), '--json'], { env: production })).code, 0, 'a public name is fine');
  t.truthy((await json<{ client_id: string }>(create('https://127.0.0.1/jwks'))).client_id, 'outside production, for local development');
});

test('refused machine clients exit 1 with one line and write nothing', async (t) => {
  const { cli, json, file } = cliInstallation(t);
  await withResources(json);
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const cert = file('svc.pem', (await createSelfSignedCertificate({ subject: 'CN=svc' })).cert);
  const machine = ['clients', 'create', '--name', 'Svc', '--grant', 'client_credentials'];
  const refused: [string[], RegExp][] = [
    [['--resource', 'https://unknown.example.com', '--scope', 'read'], /no resource server https:\/\/unknown\.example\.com; create it first/],
    [['--resource', ORDERS, '--scope', 'billing:pay'], /https:\/\/orders\.example\.com has no scope billing:pay/],
    [['--resource', ORDERS, '--resource', BILLING, '--scope', 'read', '--scope', 'admin'], /no resource given offers the scope admin/],
    [['--resource', ORDERS, '--resource', 'https://unknown.example.com', '--scope', 'read'], /no resource server https:\/\/unknown\.example\.com/],
    [['--auth', 'tls_client_auth', '--resource', ORDERS, '--scope', 'read'], /tls_client_auth needs a subject DN or SAN/],
    [['--auth', 'tls_client_auth', '--tls-subject-dn', 'svc', '--resource', ORDERS, '--scope', 'read'], /svc is not a distinguished name/],
    [['--auth', 'tls_client_auth', '--tls-subject-dn', 'CN=svc;O=Org', '--resource', ORDERS, '--scope', 'read'], /CN=svc;O=Org is not a distinguished name .*unescaped ;/],
    [['--auth', 'tls_client_auth', '--tls-san-ip', '300.1.1.1', '--resource', ORDERS, '--scope', 'read'], /300\.1\.1\.1 is not an IP address/],
    // oidc-provider refuses a client with two token bindings at every request; Tessera refuses it at creation.
    [['--auth', 'tls_client_auth', '--tls-subject-dn', 'CN=svc', '--require-dpop', '--resource', ORDERS, '--scope', 'read'], /tokens of a tls_client_auth client are bound to its certificate \(RFC 8705\); they cannot be DPoP-bound as well/],
    [['--auth', 'self_signed_tls_client_auth', '--resource', ORDERS, '--scope', 'read'], /self_signed_tls_client_auth needs a certificate/],
    [['--auth', 'self_signed_tls_client_auth', '--cert', file('garbage.pem', 'not a certificate\n'), '--resource', ORDERS, '--scope', 'read'], /--cert .*garbage\.pem is not a PEM-encoded X\.509 certificate/],
    [['--auth', 'self_signed_tls_client_auth', '--cert', cert, '--cert', path.join(path.dirname(cert), 'missing.pem'), '--resource', ORDERS, '--scope', 'read'], /cannot read --cert .*missing\.pem: no such file/],
    [['--auth', 'private_key_jwt', '--jwks', file('private.json', JSON.stringify({ keys: [await jose.exportJWK(privateKey)] })), '--resource', ORDERS, '--scope', 'read'], /private or secret key; register public keys only/],
    [['--auth', 'private_key_jwt', '--jwks', file('secret.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })), '--resource', ORDERS, '--scope', 'read'], /private or secret key/],
    [['--auth', 'private_key_jwt', '--jwks', file('bare.json', JSON.stringify(await jose.exportJWK(publicKey))), '--resource', ORDERS, '--scope', 'read'], /must be a JWK set/],
    [['--auth', 'private_key_jwt', '--jwks', file('broken.json', '{"keys": ['), '--resource', ORDERS, '--scope', 'read'], /is not valid JSON/],
    [['--auth', 'private_key_jwt', '--jwks', file('bogus.json', JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }] })), '--resource', ORDERS, '--scope', 'read'], /key 1 in --jwks .* is not a usable public key/],
    [['--auth', 'private_key_jwt', '--jwks-uri', 'http://svc.example.com/jwks', '--resource', ORDERS, '--scope', 'read'], /JWKS URI: .* must use https/],
    [['--auth', 'private_key_jwt', '--resource', ORDERS, '--scope', 'read'], /private_key_jwt needs public keys/],
  ];
  // The cases run side by side: none of them may write, so none can disturb another.
  const results = await Promise.all(refused.map(([args]) => cli([...machine, ...args, '--json'])));
  for (const [index, [args, message]] of refused.entries()) {
    const result = results[index]!;
    t.is(result.code, 1, args.join(' '));
    t.is(result.stdout, '', args.join(' '));
    t.regex(singleErrorLine(result), message, args.join(' '));
  }
  const names = (await json<ListedClient[]>(['clients', 'list'])).map((client) => client.client_name);
  t.false(names.includes('Svc'), 'no refused client was written');
  t.is(names.length, 2, 'only the two resource servers\' clients');
});

test('mixing the options of different client kinds or methods is bad usage: exit 2, nothing written', async (t) => {
  const { cli, json, file } = cliInstallation(t);
  await withResources(json);
  const cert = file('svc.pem', (await createSelfSignedCertificate({ subject: 'CN=svc' })).cert);
  const cases: [string[], RegExp][] = [
    [['--grant', 'implicit', '--redirect-uri', 'https://rp.example/cb'], /--grant must be authorization_code, device_code or client_credentials, not "implicit"/],
    [['--redirect-uri', 'https://rp.example/cb', '--resource', ORDERS], /--resource is for machine clients/],
    [['--grant', 'authorization_code', '--redirect-uri', 'https://rp.example/cb', '--auth', 'tls_client_auth'], /--auth is for machine clients/],
    [['--grant', 'authorization_code'], /"clients create" needs --redirect-uri URI/],
    [['--grant', 'client_credentials', '--redirect-uri', 'https://rp.example/cb', '--resource', ORDERS, '--scope', 'read'], /--redirect-uri is for relying parties/],
    [['--grant', 'client_credentials', '--require-par', '--resource', ORDERS, '--scope', 'read'], /--require-par is for relying parties/],
    [['--grant', 'client_credentials', '--auth', 'basic', '--resource', ORDERS, '--scope', 'read'], /--auth must be one of tls_client_auth, self_signed_tls_client_auth, private_key_jwt, client_secret_basic/],
    [['--grant', 'client_credentials', '--cert', cert, '--resource', ORDERS, '--scope', 'read'], /--cert is for --auth self_signed_tls_client_auth, not client_secret_basic/],
    [['--grant', 'client_credentials', '--auth', 'self_signed_tls_client_auth', '--tls-subject-dn', 'CN=svc', '--resource', ORDERS, '--scope', 'read'], /--tls-subject-dn is for --auth tls_client_auth/],
    [['--grant', 'client_credentials', '--auth', 'private_key_jwt', '--jwks', cert, '--jwks-uri', 'https://svc.example.com/jwks', '--resource', ORDERS, '--scope', 'read'], /--jwks or --jwks-uri, not both/],
    [['--grant', 'client_credentials', '--scope', 'read'], /needs --resource URI/],
    [['--grant', 'client_credentials', '--resource', ORDERS], /needs --scope S/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(['clients', 'create', '--name', 'Mixed', ...args, '--json'])));
  for (const [index, [args, message]] of cases.entries()) {
    const result = results[index]!;
    t.is(result.code, 2, args.join(' '));
    t.is(result.stdout, '');
    t.regex(singleErrorLine(result), message, args.join(' '));
    t.regex(result.stderr, /run "tessera clients create --help"/);
  }
  t.false((await json<ListedClient[]>(['clients', 'list'])).some((client) => client.client_name === 'Mixed'));
});

test('relying parties gain --require-par and --require-dpop, and --grant authorization_code names the default form', async (t) => {
  const { json } = cliInstallation(t);
  const strict = await json<{ client_id: string; client_secret: string }>([
    'clients', 'create', '--name', 'Strict', '--grant', 'authorization_code', '--redirect-uri', 'https://rp.example/cb', '--require-par', '--require-dpop',
  ]);
  t.deepEqual(Object.keys(strict), ['client_id', 'client_secret']);
  const plain = await json<{ client_id: string }>(['clients', 'create', '--name', 'Plain', '--redirect-uri', 'https://rp.example/cb']);
  const listed = await json<ListedClient[]>(['clients', 'list']);
  const strictListed = listed.find((client) => client.client_id === strict.client_id);
  t.like(strictListed, { token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] });
  t.like(strictListed?.metadata, { require_pushed_authorization_requests: true, dpop_bound_access_tokens: true, redirect_uris: ['https://rp.example/cb'] });
  const plainMetadata = listed.find((client) => client.client_id === plain.client_id)?.metadata ?? {};
  t.false('require_pushed_authorization_requests' in plainMetadata);
  t.false('dpop_bound_access_tokens' in plainMetadata);
});

test('clients certs add and remove rotate a self-signed client\'s certificates, and the last one stays', async (t) => {
  const { cli, json, file } = cliInstallation(t);
  await withResources(json);
  const old = await createSelfSignedCertificate({ subject: 'CN=svc-old' });
  const next = await createSelfSignedCertificate({ subject: 'CN=svc-new' });
  const oldThumbprint = thumbprint(new X509Certificate(old.cert));
  const nextThumbprint = thumbprint(new X509Certificate(next.cert));
  const { client_id: clientId } = await json<{ client_id: string }>([
    'clients', 'create', '--name', 'Rotating', '--grant', 'client_credentials', '--auth', 'self_signed_tls_client_auth', '--cert', file('old.pem', old.cert), '--resource', ORDERS, '--scope', 'read',
  ]);
  const thumbprints = async () => (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === clientId)?.thumbprints;

  const added = await json<Record<string, unknown>>(['clients', 'certs', 'add', clientId, '--cert', file('new.pem', next.cert)]);
  t.deepEqual(added, { client_id: clientId, thumbprint: nextThumbprint, thumbprints: [oldThumbprint, nextThumbprint] });
  t.deepEqual(await thumbprints(), [oldThumbprint, nextThumbprint]);

  const twice = await cli(['clients', 'certs', 'add', clientId, '--cert', file('new.pem', next.cert)]);
  t.is(twice.code, 1);
  t.regex(singleErrorLine(twice), /already registered/);
  const subject = await cli(['clients', 'certs', 'add', clientId, '--tls-subject-dn', 'CN=svc']);
  t.is(subject.code, 1);
  t.regex(singleErrorLine(subject), /only for tls_client_auth clients/);
  const garbage = await cli(['clients', 'certs', 'add', clientId, '--cert', file('garbage.pem', 'nope')]);
  t.is(garbage.code, 1);
  t.regex(singleErrorLine(garbage), /garbage\.pem is not a PEM-encoded X\.509 certificate/);

  const removed = await json<Record<string, unknown>>(['clients', 'certs', 'remove', clientId, '--thumbprint', oldThumbprint]);
  t.deepEqual(removed, { client_id: clientId, removed: oldThumbprint, thumbprints: [nextThumbprint] });

  const last = await cli(['clients', 'certs', 'remove', clientId, '--thumbprint', nextThumbprint]);
  t.is(last.code, 1);
  t.regex(singleErrorLine(last), /only certificate; add the new one first/);
  const unknown = await cli(['clients', 'certs', 'remove', clientId, '--thumbprint', oldThumbprint]);
  t.is(unknown.code, 1);
  t.regex(singleErrorLine(unknown), /No certificate with that thumbprint/);
  // Thumbprints are base64url: one in four starts with "-", and is still the option's value.
  const dashed = await cli(['clients', 'certs', 'remove', clientId, '--thumbprint', '-jtJHUt2pwF9KW8mBGM7p4HnFLuU2ZHW3YELGrW_cI4']);
  t.is(dashed.code, 1);
  t.regex(singleErrorLine(dashed), /No certificate with that thumbprint/);
  const forgotten = await cli(['clients', 'certs', 'remove', clientId, '--thumbprint', '--json']);
  t.is(forgotten.code, 2);
  t.regex(singleErrorLine(forgotten), /option --thumbprint needs a value/);
  const noClient = await cli(['clients', 'certs', 'add', 'no-such-client', '--cert', file('new.pem', next.cert)]);
  t.is(noClient.code, 1);
  t.regex(singleErrorLine(noClient), /No client no-such-client/);
  t.deepEqual(await thumbprints(), [nextThumbprint], 'refused changes changed nothing');
});

test('clients certs add and remove rotate a tls_client_auth client\'s subjects, one per call', async (t) => {
  const { cli, json, file } = cliInstallation(t);
  await withResources(json);
  const { client_id: clientId } = await json<{ client_id: string }>([
    'clients', 'create', '--name', 'Subjects', '--grant', 'client_credentials', '--auth', 'tls_client_auth', '--tls-subject-dn', 'CN=svc,O=Old', '--resource', ORDERS, '--scope', 'read',
  ]);
  const added = await json<Record<string, unknown>>(['clients', 'certs', 'add', clientId, '--tls-san-dns', 'svc.example.com']);
  t.deepEqual(added, {
    client_id: clientId,
    tls_subject: { type: 'san_dns', value: 'svc.example.com' },
    tls_subjects: [{ type: 'subject_dn', value: 'CN=svc,O=Old' }, { type: 'san_dns', value: 'svc.example.com' }],
  });
  const cert = await cli(['clients', 'certs', 'add', clientId, '--cert', file('svc.pem', (await createSelfSignedCertificate({ subject: 'CN=svc' })).cert)]);
  t.is(cert.code, 1);
  t.regex(singleErrorLine(cert), /only for self_signed_tls_client_auth clients/);

  const removed = await cli(['clients', 'certs', 'remove', clientId, '--tls-subject-dn', 'CN=svc,O=Old']);
  t.is(removed.code, 0, removed.stderr);
  t.regex(removed.stdout, /Removed --tls-subject-dn "CN=svc,O=Old"/);
  const listed = (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === clientId);
  t.deepEqual(listed?.tls_subjects, [{ type: 'san_dns', value: 'svc.example.com' }]);
  t.is(listed?.metadata.tls_client_auth_san_dns, 'svc.example.com', 'oidc-provider\'s own property follows the first subject');
  t.false('tls_client_auth_subject_dn' in (listed?.metadata ?? {}));

  const last = await cli(['clients', 'certs', 'remove', clientId, '--tls-san-dns', 'svc.example.com']);
  t.is(last.code, 1);
  t.regex(singleErrorLine(last), /only subject; add the new one first/);

  for (const args of [[], ['--tls-san-dns', 'a.example.com', '--tls-san-ip', '10.0.0.1']]) {
    const usage = await cli(['clients', 'certs', 'add', clientId, ...args]);
    t.is(usage.code, 2, args.join(' '));
    t.regex(singleErrorLine(usage), args.length ? /one credential at a time/ : /needs one of --cert, --tls-subject-dn/);
  }
  const missingId = await cli(['clients', 'certs', 'remove', '--thumbprint', 'x']);
  t.is(missingId.code, 2);
  t.regex(singleErrorLine(missingId), /"clients certs remove" needs CLIENT_ID/);
});

test('pki init creates a CA once; pki issue writes a client certificate that chains to it and matches its thumbprint', async (t) => {
  const { cli, json, dataDir } = cliInstallation(t);
  const out = path.join(dataDir, 'svc-cert');
  const early = await cli(['pki', 'issue', '--client-id', 'svc', '--out', out]);
  t.is(early.code, 1);
  t.regex(singleErrorLine(early), /No local CA yet; run "tessera pki init" first/);

  const first = await json<{ ca_cert: string; created: boolean }>(['pki', 'init']);
  t.deepEqual(first, { ca_cert: path.join(dataDir, 'pki', 'ca.pem'), created: true });
  const caPem = readFileSync(first.ca_cert, 'utf8');
  const again = await cli(['pki', 'init']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /already exists/);
  t.true(again.stdout.includes(`MTLS_CA=${first.ca_cert}`));
  t.deepEqual(await json(['pki', 'init']), { ca_cert: first.ca_cert, created: false });
  t.is(readFileSync(first.ca_cert, 'utf8'), caPem, 'the CA was left unchanged');

  const issued = await json<Record<string, string>>(['pki', 'issue', '--client-id', 'svc', '--out', out]);
  t.deepEqual(Object.keys(issued), ['cert_file', 'key_file', 'subject', 'x5t#S256', 'not_after', 'ca_cert']);
  t.like(issued, { cert_file: path.join(out, 'client.pem'), key_file: path.join(out, 'client-key.pem'), subject: 'CN=svc', ca_cert: first.ca_cert });
  const certificate = new X509Certificate(readFileSync(issued.cert_file!));
  const ca = new X509Certificate(caPem);
  t.true(chainsTo(certificate, [ca]));
  t.is(issued['x5t#S256'], thumbprint(certificate));
  t.true(subjectMatches(certificate, { type: 'subject_dn', value: 'CN=svc' }));
  t.true(certificate.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(issued.key_file!))));
  t.is(statSync(issued.key_file!).mode & 0o077, 0, 'the key is readable by its owner only');
  const days = (Date.parse(certificate.validTo) - Date.now()) / 86_400_000;
  t.true(days > 364 && days < 366, 'valid for a year by default');

  const named = await json<Record<string, string>>(['pki', 'issue', '--client-id', 'svc', '--out', path.join(dataDir, 'named'), '--subject', 'CN=svc,O=Org', '--san-dns', 'svc.example.com', '--days', '30']);
  const namedCertificate = new X509Certificate(readFileSync(named.cert_file!));
  t.is(named.subject, 'CN=svc,O=Org');
  t.true(subjectMatches(namedCertificate, { type: 'subject_dn', value: 'CN=svc,O=Org' }));
  t.true(subjectMatches(namedCertificate, { type: 'san_dns', value: 'svc.example.com' }));
  t.true(chainsTo(namedCertificate, [ca]));
  t.true((Date.parse(namedCertificate.validTo) - Date.now()) / 86_400_000 < 31);

  // The issued certificate registers as-is for a self-signed client, by the same thumbprint.
  await withResources(json);
  const { client_id: clientId } = await json<{ client_id: string }>([
    'clients', 'create', '--name', 'Issued', '--grant', 'client_credentials', '--auth', 'self_signed_tls_client_auth', '--cert', issued.cert_file!, '--resource', ORDERS, '--scope', 'read',
  ]);
  const listed = (await json<ListedClient[]>(['clients', 'list'])).find((client) => client.client_id === clientId);
  t.deepEqual(listed?.thumbprints, [issued['x5t#S256']]);

  // Generated client ids may start with "-"; as an option's value it is still the id.
  const dashed = await json<Record<string, string>>(['pki', 'issue', '--client-id', '-Xq3_svc', '--out', path.join(dataDir, 'dashed')]);
  t.is(dashed.subject, 'CN=-Xq3_svc');

  for (const args of [['--days', '0'], ['--days', 'ten'], ['--subject', 'svc']]) {
    const usage = await cli(['pki', 'issue', '--client-id', 'svc', '--out', out, ...args]);
    t.is(usage.code, 2, args.join(' '));
    t.is(usage.stdout, '');
  }
});

test('pki server-cert writes a server certificate for localhost signed by the local CA', async (t) => {
  const { cli, json, dataDir, env } = cliInstallation(t);
  const out = path.join(dataDir, 'tls');
  const early = await cli(['pki', 'server-cert', '--out', out]);
  t.is(early.code, 1);
  t.regex(singleErrorLine(early), /run "tessera pki init" first/);

  const { ca_cert: caFile } = await json<{ ca_cert: string }>(['pki', 'init']);
  const written = await json<Record<string, unknown>>(['pki', 'server-cert', '--out', out]);
  t.like(written, { cert_file: path.join(out, 'server.pem'), key_file: path.join(out, 'server-key.pem'), subject: 'CN=localhost', san_dns: ['localhost'], san_ip: ['127.0.0.1', '::1'] });
  const certificate = new X509Certificate(readFileSync(path.join(out, 'server.pem')));
  t.true(chainsTo(certificate, [new X509Certificate(readFileSync(caFile))]));
  t.is(certificate.checkHost('localhost'), 'localhost');
  t.is(certificate.checkIP('127.0.0.1'), '127.0.0.1');
  t.is(written['x5t#S256'], thumbprint(certificate));

  const custom = await json<Record<string, unknown>>(['pki', 'server-cert', '--out', out, '--san-dns', 'idp.test', '--san-ip', '10.1.2.3']);
  t.like(custom, { subject: 'CN=idp.test', san_dns: ['idp.test'], san_ip: ['10.1.2.3'] });
  const customCertificate = new X509Certificate(readFileSync(path.join(out, 'server.pem')));
  t.is(customCertificate.checkHost('idp.test'), 'idp.test');
  t.is(customCertificate.checkHost('localhost'), undefined);

  // A certificate the server's configuration accepts as TLS_CERT/TLS_KEY.
  const config = loadConfig({ ...env, TLS_CERT: path.join(out, 'server.pem'), TLS_KEY: path.join(out, 'server-key.pem'), MTLS_CA: caFile });
  t.truthy(config.tls.cert);
  t.truthy(config.tls.clientCa);
});

test('signing_alg in resources.json is checked at startup, one line per problem, and reaches the resource server settings', async (t) => {
  const dir = makeTempDir('tessera-signing-alg-config-');
  t.teardown(() => removeDir(dir));
  const configDir = path.join(dir, 'config');
  mkdirSync(configDir);
  const write = (resources: unknown) => writeFileSync(path.join(configDir, 'resources.json'), JSON.stringify(resources));

  write([
    { audience: ORDERS, scopes: ['read'], signing_alg: 'HS256' },
    { audience: BILLING, scopes: ['read'], format: 'opaque', signing_alg: 'ES256' },
  ]);
  const error = t.throws(() => loadConfig({ DATA_DIR: dir, CONFIG_DIR: configDir }));
  t.regex(error.message, /0\.signing_alg: .*RS256.*ES256/);
  t.regex(error.message, /1\.signing_alg: applies to JWT access tokens only/);

  write([{ audience: ORDERS, scopes: ['read'], signing_alg: 'EdDSA' }, { audience: BILLING, scopes: ['read'] }]);
  const config = loadConfig({ DATA_DIR: dir, CONFIG_DIR: configDir });
  t.is(config.staticResources[0]?.signingAlg, 'EdDSA');
  t.false('signingAlg' in config.staticResources[1]!);
});
