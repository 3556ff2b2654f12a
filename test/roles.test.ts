/**
 * Roles: given with `tessera users roles` (the CLI's own entry point), released by the `roles` scope to a real
 * relying party (openid-client), and limiting a resource server's scopes for people and machines.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { loadConfig } from '../src/config.ts';
import { runCli, runCliJson } from './helpers/cli.ts';
import { discover, signIn, staticClient, type Person } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const API = 'https://orders.example.com';
const SECRET = 'machine-secret-with-plenty-of-entropy-0123456789';

let server: TestServer;
let rp: oidc.Configuration;
let counter = 0;

function machine(clientId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: clientId,
    client_secret: SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    tessera_resources: { [API]: ['orders:read', 'orders:write'] },
    ...extra,
  };
}

test.before(async () => {
  server = await startTestServer({
    clients: [
      staticClient({ tessera_resources: { [API]: ['orders:read', 'orders:write'] } }),
      machine('machine'),
      machine('machine-admin', { tessera_roles: ['admin'] }),
    ],
  });
  rp = await discover(server.issuer);
  const created = await runCliJson<{ scope_roles?: unknown }>(server.cliEnv, [
    'resources', 'create', '--audience', API, '--scope', 'orders:read', '--scope', 'orders:write', '--scope-role', 'orders:write=admin',
  ]);
  if (!created.scope_roles) throw new Error('resources create did not keep --scope-role');
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

async function newPerson(): Promise<Person> {
  counter += 1;
  const person = { email: `roles${counter}.${Date.now()}@example.com`, password: `a roles test passphrase number ${counter}`, name: `Person ${counter}` };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password, name: person.name }));
  return person;
}

function scopeOf(accessToken: string): string[] {
  return String(jose.decodeJwt(accessToken).scope ?? '').split(' ').filter(Boolean).sort();
}

async function clientCredentials(clientId: string, scope?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${btoa(`${clientId}:${SECRET}`)}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: API, ...(scope && { scope }) }),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

test('the roles scope puts the roles claim in the ID token and at userinfo; without it there is none', async (t) => {
  const person = await newPerson();
  t.is((await runCli(server.cliEnv, ['users', 'roles', 'add', person.email, 'admin'])).code, 0);
  t.is((await runCli(server.cliEnv, ['users', 'roles', 'add', person.email, 'billing:viewer'])).code, 0);

  const without = await signIn(rp, new UserAgent(), person, { parameters: { scope: 'openid profile' } });
  t.false('roles' in without.tokens.claims()!);
  t.false('roles' in await oidc.fetchUserInfo(rp, without.tokens.access_token, without.tokens.claims()!.sub));

  const withRoles = await signIn(rp, new UserAgent(), person, { parameters: { scope: 'openid roles' } });
  t.deepEqual(withRoles.tokens.claims()!.roles, ['admin', 'billing:viewer']);
  const userinfo = await oidc.fetchUserInfo(rp, withRoles.tokens.access_token, withRoles.tokens.claims()!.sub);
  t.deepEqual(userinfo.roles, ['admin', 'billing:viewer']);

  const nobody = await newPerson();
  const empty = await signIn(rp, new UserAgent(), nobody, { parameters: { scope: 'openid roles' } });
  t.deepEqual(empty.tokens.claims()!.roles, [], 'a person without roles gets an empty list, not a missing claim');
});

test('discovery lists the roles scope and claim', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, string[]>;
  t.true(metadata.scopes_supported!.includes('roles'));
  t.true(metadata.claims_supported!.includes('roles'));
});

test('a scope limited to a role is withheld from a person without it, granted once they have it, and gone at the next refresh when taken away', async (t) => {
  const person = await newPerson();
  const parameters = { scope: 'openid offline_access orders:read orders:write', resource: API };

  const before = await signIn(rp, new UserAgent(), person, { parameters });
  t.deepEqual(scopeOf(before.tokens.access_token), ['orders:read']);
  t.false(String(before.tokens.scope).split(' ').includes('orders:write'), 'the token response says what was granted');

  t.is((await runCli(server.cliEnv, ['users', 'roles', 'add', person.email, 'admin'])).code, 0);
  const agent = new UserAgent();
  const after = await signIn(rp, agent, person, { parameters });
  t.deepEqual(scopeOf(after.tokens.access_token), ['orders:read', 'orders:write']);

  const removed = await runCliJson<{ roles: string[]; removed: boolean }>(server.cliEnv, ['users', 'roles', 'remove', person.email, 'admin']);
  t.deepEqual(removed, { email: person.email, roles: [], removed: true });
  const refreshed = await oidc.refreshTokenGrant(rp, after.tokens.refresh_token!);
  t.deepEqual(scopeOf(refreshed.access_token), ['orders:read']);
});

test('a machine client gets a role-limited scope only when it holds the role', async (t) => {
  const plain = await clientCredentials('machine');
  t.is(plain.status, 200);
  t.is(plain.body.scope, 'orders:read', 'the default leaves out what the client may not have');

  const asked = await clientCredentials('machine', 'orders:write');
  t.is(asked.status, 400);
  t.is(asked.body.error, 'invalid_scope');
  t.regex(String(asked.body.error_description), /limited to roles/);

  const admin = await clientCredentials('machine-admin');
  t.is(admin.status, 200);
  t.is(admin.body.scope, 'orders:read orders:write');
  t.deepEqual(scopeOf(String(admin.body.access_token)), ['orders:read', 'orders:write']);
});

test('a machine client made with clients create --role holds that role', async (t) => {
  const created = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, [
    'clients', 'create', '--name', 'Order admin', '--grant', 'client_credentials', '--resource', API, '--scope', 'orders:read', '--scope', 'orders:write', '--role', 'admin',
  ]);
  const listed = await runCliJson<Array<{ client_id: string; roles?: string[] }>>(server.cliEnv, ['clients', 'list']);
  t.deepEqual(listed.find((client) => client.client_id === created.client_id)?.roles, ['admin']);
  const response = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${btoa(`${created.client_id}:${created.client_secret}`)}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:write' }),
  });
  t.is(response.status, 200);
  t.is(((await response.json()) as { scope: string }).scope, 'orders:write');

  const invalid = await runCli(server.cliEnv, ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--resource', API, '--scope', 'orders:read', '--role', 'no good']);
  t.is(invalid.code, 1);
  t.regex(invalid.stderr, /not a valid role name/);
  const misplaced = await runCli(server.cliEnv, ['clients', 'create', '--name', 'x', '--redirect-uri', 'http://localhost:9/cb', '--role', 'admin']);
  t.is(misplaced.code, 2);
});

test('users roles add and remove keep a sorted set of valid names, users list shows them, and mistakes are refused', async (t) => {
  const person = await newPerson();
  const first = await runCliJson<{ roles: string[] }>(server.cliEnv, ['users', 'roles', 'add', person.email.toUpperCase(), 'ops']);
  t.deepEqual(first.roles, ['ops']);
  const again = await runCliJson<{ roles: string[] }>(server.cliEnv, ['users', 'roles', 'add', person.email, 'ops']);
  t.deepEqual(again.roles, ['ops'], 'adding a role twice changes nothing');
  await runCliJson(server.cliEnv, ['users', 'roles', 'add', person.email, 'admin']);

  const listed = await runCliJson<Array<{ email: string; roles: string[] }>>(server.cliEnv, ['users', 'list']);
  t.deepEqual(listed.find((user) => user.email === person.email)?.roles, ['admin', 'ops']);
  const table = await runCli(server.cliEnv, ['users', 'list']);
  t.regex(table.stdout, /ROLES/);
  t.regex(table.stdout, /admin,ops/);

  const notHeld = await runCliJson<{ removed: boolean; roles: string[] }>(server.cliEnv, ['users', 'roles', 'remove', person.email, 'auditor']);
  t.like(notHeld, { removed: false, roles: ['admin', 'ops'] });

  const invalid = await runCli(server.cliEnv, ['users', 'roles', 'add', person.email, 'bad role!']);
  t.is(invalid.code, 1);
  t.regex(invalid.stderr, /not a valid role name/);
  const unknown = await runCli(server.cliEnv, ['users', 'roles', 'add', 'nobody@example.com', 'admin']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no user with the email nobody@example.com/);
  const missing = await runCli(server.cliEnv, ['users', 'roles', 'add', person.email]);
  t.is(missing.code, 2);
});

test('resources create refuses a role limit on a scope the resource does not offer, and resources list shows the limits', async (t) => {
  const refused = await runCli(server.cliEnv, ['resources', 'create', '--audience', 'https://other.example.com', '--scope', 'a', '--scope-role', 'b=admin']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /scope_roles names b/);
  const malformed = await runCli(server.cliEnv, ['resources', 'create', '--audience', 'https://other.example.com', '--scope', 'a', '--scope-role', 'a']);
  t.is(malformed.code, 2);

  const listed = await runCliJson<Array<{ audience: string; scope_roles?: Record<string, string[]> }>>(server.cliEnv, ['resources', 'list']);
  t.deepEqual(listed.find((resource) => resource.audience === API)?.scope_roles, { 'orders:write': ['admin'] });
});

test('scope_roles in resources.json is checked at startup and reaches the resource server settings', async (t) => {
  const dir = makeTempDir('tessera-roles-config-');
  t.teardown(() => removeDir(dir));
  const configDir = path.join(dir, 'config');
  mkdirSync(configDir);
  const write = (resources: unknown) => writeFileSync(path.join(configDir, 'resources.json'), JSON.stringify(resources));

  write([{ audience: API, scopes: ['orders:read'], scope_roles: { 'orders:write': ['admin'] } }]);
  t.throws(() => loadConfig({ DATA_DIR: dir, CONFIG_DIR: configDir }), { message: /scope_roles\.orders:write: is not one of the resource's scopes/ });
  write([{ audience: API, scopes: ['orders:write'], scope_roles: { 'orders:write': ['not a role'] } }]);
  t.throws(() => loadConfig({ DATA_DIR: dir, CONFIG_DIR: configDir }), { message: /must be a role name/ });

  write([{ audience: API, scopes: ['orders:read', 'orders:write'], scope_roles: { 'orders:write': ['admin'] } }]);
  const config = loadConfig({ DATA_DIR: dir, CONFIG_DIR: configDir });
  t.deepEqual(config.staticResources[0]?.scopeRoles, { 'orders:write': ['admin'] });
});
