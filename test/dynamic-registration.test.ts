/**
 * Dynamic client registration (RFC 7591) and management (RFC 7592) through the real endpoints:
 * DYNAMIC_CLIENT_REGISTRATION=off|token|open, the policy every registered client meets, initial
 * access tokens from the CLI with a counted number of uses (raced on both stores), the mark in
 * `clients list`, the audit trail, the per-address rate limit and the sweep of unused clients.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { runCli, runCliJson } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { newPerson, RP_CALLBACK, signIn } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { killIfRunning, listeningUrl, serverEnv, spawnServer, workersReady } from './helpers/spawned-server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const PUBLIC_CLIENT = {
  client_name: 'Agent by itself',
  redirect_uris: [RP_CALLBACK],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

async function register(server: TestServer, body: Record<string, unknown>, token?: string) {
  const response = await fetch(`${server.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => undefined) as Record<string, unknown> | undefined };
}

async function discovery(server: TestServer): Promise<Record<string, unknown>> {
  return (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Promise<Record<string, unknown>>;
}

test('with registration off (the default) discovery names no registration endpoint and /reg is not found', async (t) => {
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  t.false('registration_endpoint' in await discovery(server));
  t.is((await register(server, PUBLIC_CLIENT)).status, 404);
});

test('with registration open a client registers itself, is marked as registered, signs a person in and can be read, changed and deleted (RFC 7592)', async (t) => {
  const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'open' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const metadata = await discovery(server);
  t.is(metadata.registration_endpoint, `${server.issuer}/reg`);

  const registered = await register(server, PUBLIC_CLIENT);
  t.is(registered.status, 201, JSON.stringify(registered.body));
  const clientId = String(registered.body!.client_id);
  t.is(registered.body!.tessera_registered, 'dynamic');
  t.is(registered.body!.scope, 'openid profile email offline_access', 'a client naming no scope gets the allowed list');

  const listed = JSON.parse((await runCli(server.cliEnv, ['clients', 'list', '--json'])).stdout) as Array<Record<string, unknown>>;
  t.is(listed.find((client) => client.client_id === clientId)?.registered, 'dynamic');
  t.regex((await runCli(server.cliEnv, ['clients', 'list'])).stdout, new RegExp(`${clientId}\\s+store \\(dynamic\\)`));
  // The admin API marks it too.
  const admin = `${server.issuer}/admin/api`;
  const robot = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', admin, '--scope', 'admin', '--role', 'admin']);
  const adminToken = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${robot.client_id}:${robot.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: admin, scope: 'admin' }),
  }).then(async (response) => (await response.json() as { access_token: string }).access_token);
  const viewed = await fetch(`${admin}/clients/${clientId}`, { headers: { authorization: `Bearer ${adminToken}` } });
  t.is(viewed.status, 200);
  t.is((await viewed.json() as { registered?: string }).registered, 'dynamic');

  // The registered client works with a real RP library: code flow with PKCE, tokens.
  const config = await oidc.discovery(new URL(server.issuer), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  t.truthy(tokens.access_token);

  const clientUri = String(registered.body!.registration_client_uri);
  const auth = { authorization: `Bearer ${String(registered.body!.registration_access_token)}` };
  const read = await fetch(clientUri, { headers: auth });
  t.is(read.status, 200);
  const current = await read.json() as Record<string, unknown>;
  const updated = await fetch(clientUri, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ ...PUBLIC_CLIENT, client_id: clientId, client_name: 'Renamed agent' }),
  });
  t.is(updated.status, 200, await updated.clone().text());
  const updatedBody = await updated.json() as Record<string, unknown>;
  t.is(updatedBody.client_name, 'Renamed agent');
  t.is(updatedBody.tessera_registered, 'dynamic');
  t.truthy(current.client_id);
  // An update meets the same policy: it cannot turn the client into a machine client.
  const newAuth = { authorization: `Bearer ${String(updatedBody.registration_access_token)}` };
  const escalated = await fetch(clientUri, {
    method: 'PUT',
    headers: { ...newAuth, 'content-type': 'application/json' },
    body: JSON.stringify({ ...PUBLIC_CLIENT, client_id: clientId, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }),
  });
  t.is(escalated.status, 400);

  const deleted = await fetch(clientUri, { method: 'DELETE', headers: newAuth });
  t.is(deleted.status, 204);
  const after = JSON.parse((await runCli(server.cliEnv, ['clients', 'list', '--json'])).stdout) as Array<Record<string, unknown>>;
  t.false(after.some((client) => client.client_id === clientId));

  // The audit trail is written in batches: wait for the deletion, the last of them.
  const types = await eventually(async () => {
    const { events } = await server.withServices((services) => services.audit.query({ clientId }));
    const seen = new Set(events.map((event) => event.type));
    return seen.has('client.deleted') ? seen : undefined;
  }, { what: 'the deletion in the audit trail' });
  for (const type of ['client.created', 'client.changed', 'client.deleted', 'token.issued'] as const) t.true(types.has(type), type);
});

test('the registration policy holds in open mode: https, loopback or private-use redirect URIs, no client credentials, no operator metadata, scopes from the allowed list', async (t) => {
  const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'open', DYNAMIC_CLIENT_REGISTRATION_SCOPES: 'openid profile' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const refused = [
    { ...PUBLIC_CLIENT, redirect_uris: ['http://agent.example.com/callback'] },
    { ...PUBLIC_CLIENT, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
    { ...PUBLIC_CLIENT, grant_types: ['authorization_code', 'client_credentials'] },
    { ...PUBLIC_CLIENT, tessera_resources: { [`${server.issuer}/admin/api`]: ['admin'] } },
    { ...PUBLIC_CLIENT, tessera_first_party: true },
    { ...PUBLIC_CLIENT, scope: 'openid email' },
  ];
  for (const body of refused) {
    const answer = await register(server, body);
    t.is(answer.status, 400, JSON.stringify(body));
    t.is(answer.body?.error, 'invalid_client_metadata');
  }
  for (const redirect of ['https://agent.example.com/callback', 'http://127.0.0.1:7777/cb', 'com.example.agent:/callback']) {
    const answer = await register(server, { ...PUBLIC_CLIENT, application_type: redirect.startsWith('https') ? 'web' : 'native', redirect_uris: [redirect], scope: 'openid' });
    t.is(answer.status, 201, `${redirect}: ${JSON.stringify(answer.body)}`);
  }
  t.is((await register(server, { not: 'json' as const, redirect_uris: 'nope' })).status, 400);

  // A confidential registrant gets its secret once; Tessera keeps a digest, and the secret works.
  const confidential = await register(server, { ...PUBLIC_CLIENT, token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' });
  t.is(confidential.status, 201);
  const { client_id: id, client_secret: secret } = confidential.body as { client_id: string; client_secret: string };
  const stored = await server.withServices((services) => services.clients.findMetadata(id));
  t.not(stored?.client_secret, secret);
  const tokenRequest = (password: string) => fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${id}:${password}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: 'no-such-code', redirect_uri: RP_CALLBACK, code_verifier: 'x'.repeat(43) }),
  }).then(async (response) => (await response.json() as { error: string }).error);
  t.is(await tokenRequest(secret), 'invalid_grant', 'authenticated; only the code is wrong');
  const read = await fetch(String(confidential.body!.registration_client_uri), { headers: { authorization: `Bearer ${String(confidential.body!.registration_access_token)}` } });
  t.is(read.status, 200);
  t.false('client_secret' in (await read.json() as object), 'RFC 7592 reads do not show the stored digest');
  t.is(await tokenRequest('wrong'), 'invalid_client');
});

for (const lane of ['SQLite', 'MongoDB'] as const) {
  test(`with registration by token, a token created with --uses 2 registers exactly two clients of six racing requests (${lane})`, async (t) => {
    const mongo = lane === 'MongoDB' ? await startMongoLane() : undefined;
    const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'token', ...(mongo && { MONGODB_URI: mongo.uri }) } });
    t.teardown(async () => {
      await server.close();
      await mongo?.stop();
      removeDir(server.dataDir);
    });
    t.is((await register(server, PUBLIC_CLIENT)).status, 401, 'no token, no registration');
    t.is((await register(server, PUBLIC_CLIENT, 'not-a-token')).status, 401);

    const created = await runCli(server.cliEnv, ['registration-tokens', 'create', '--uses', '2', '--ttl', '600', '--json']);
    t.is(created.code, 0, created.stderr);
    const { initial_access_token: token, uses } = JSON.parse(created.stdout) as { initial_access_token: string; uses: number };
    t.is(uses, 2);

    const answers = await Promise.all(Array.from({ length: 6 }, () => register(server, PUBLIC_CLIENT, token)));
    const statuses = answers.map((answer) => answer.status).sort();
    t.deepEqual(statuses, [201, 201, 401, 401, 401, 401], JSON.stringify(answers.map((answer) => answer.body)));
    t.is((await register(server, PUBLIC_CLIENT, token)).status, 401);
  });
}

test('with WORKERS=2 on SQLite, a token created with --uses 3 registers exactly three clients of ten racing requests spread over both workers', async (t) => {
  const dataDir = makeTempDir();
  const options = { dataDir, env: { WORKERS: '2', DYNAMIC_CLIENT_REGISTRATION: 'token' } };
  const server = spawnServer(options);
  t.teardown(() => {
    killIfRunning(server);
    removeDir(dataDir);
  });
  const issuer = await listeningUrl(server);
  await workersReady(server, 2);
  const created = await runCli({ ...serverEnv(options), PORT: new URL(issuer).port }, ['registration-tokens', 'create', '--uses', '3', '--json']);
  t.is(created.code, 0, created.stderr);
  const { initial_access_token: token } = JSON.parse(created.stdout) as { initial_access_token: string };
  // A fresh connection per request lets the primary spread them over both workers.
  const target = { issuer } as TestServer;
  const statuses = (await Promise.all(Array.from({ length: 10 }, () => register(target, PUBLIC_CLIENT, token)))).map((answer) => answer.status).sort();
  t.deepEqual(statuses, [201, 201, 201, 401, 401, 401, 401, 401, 401, 401]);
});

test('the CLI refuses a bad --uses or --ttl with a usage error', async (t) => {
  const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'token' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  t.is((await runCli(server.cliEnv, ['registration-tokens', 'create', '--uses', 'many'])).code, 2);
  const zero = await runCli(server.cliEnv, ['registration-tokens', 'create', '--uses', '0']);
  t.not(zero.code, 0);
  t.regex(zero.stderr, /uses/);
});

test('registrations count per address, and over the limit the answer is 429 with Retry-After', async (t) => {
  const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'open', RATE_LIMIT_CLIENT_REGISTRATION_PER_IP: '2/600' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  t.is((await register(server, PUBLIC_CLIENT)).status, 201);
  t.is((await register(server, { ...PUBLIC_CLIENT, redirect_uris: ['http://bad.example.com/'] })).status, 400);
  const response = await fetch(`${server.issuer}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(PUBLIC_CLIENT) });
  t.is(response.status, 429);
  t.truthy(response.headers.get('retry-after'));
});

test('registered clients never used are removed after DYNAMIC_CLIENT_REGISTRATION_UNUSED_DAYS, used ones stay', async (t) => {
  const server = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'open', DYNAMIC_CLIENT_REGISTRATION_UNUSED_DAYS: '3' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const unused = String((await register(server, PUBLIC_CLIENT)).body!.client_id);
  const used = String((await register(server, PUBLIC_CLIENT)).body!.client_id);
  const config = await oidc.discovery(new URL(server.issuer), used, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  await signIn(config, new UserAgent(), newPerson(), { register: true });

  const listed = async () => JSON.parse((await runCli(server.cliEnv, ['clients', 'list', '--json'])).stdout) as Array<{ client_id: string; first_used_at?: string }>;
  // The first use is noted in the background once the token is issued.
  await eventually(async () => ((await listed()).find((client) => client.client_id === used)?.first_used_at ? true : undefined), { what: 'the first use noted' });
  const removedEarly = await server.withServices((services) => services.clients.purgeUnusedRegistered(3, new Date(Date.now() + 2 * 86_400_000)));
  t.is(removedEarly, 0, 'two days is not yet three');
  const removed = await server.withServices((services) => services.clients.purgeUnusedRegistered(3, new Date(Date.now() + 4 * 86_400_000)));
  t.is(removed, 1);
  const remaining = (await listed()).map((client) => client.client_id);
  t.false(remaining.includes(unused));
  t.true(remaining.includes(used));
});
