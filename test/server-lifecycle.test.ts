/**
 * What an operator relies on across time: data surviving restarts, key rotation picked up by a
 * running server, the refresh reuse grace period, password hashes upgraded to new parameters.
 */
import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { eventually } from './helpers/eventually.ts';
import { discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

test('accounts, clients, keys and refresh tokens survive a restart of the embedded store', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const person = newPerson();

  const first = await startTestServer({ dataDir, clients: [staticClient()] });
  const created = await first.withServices((services) => services.clients.createRelyingParty({ name: 'Stored RP', redirectUris: ['http://localhost:9/callback'] }));
  const { tokens } = await signIn(await discover(first.issuer), new UserAgent(), person, { register: true });
  const kidsBefore = (await (await fetch(`${first.issuer}/jwks`)).json() as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid).sort();
  const port = first.port;
  await first.close();
  // Let this process's keep-alive sockets see the old server's FIN before the new one takes the port.
  await new Promise((resolve) => setTimeout(resolve, 300));

  const second = await startTestServer({ dataDir, clients: [staticClient()], env: { PORT: String(port) } });
  t.teardown(() => second.close());
  t.is(second.issuer, first.issuer);
  const kidsAfter = (await (await fetch(`${second.issuer}/jwks`)).json() as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid).sort();
  t.deepEqual(kidsAfter, kidsBefore, 'the same signing keys');

  const config = await discover(second.issuer);
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
  t.is(refreshed.claims()?.sub, tokens.claims()?.sub, 'the refresh token and the account survived');
  const again = await signIn(config, new UserAgent(), person);
  t.is(again.tokens.claims()?.email, person.email, 'the password still works');
  const stored = await second.withServices((services) => services.clients.findMetadata(created.client_id));
  t.is(stored?.client_name, 'Stored RP');
});

test('a key rotation is picked up by the running server without a restart, and the old key stays published', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const config = await discover(server.issuer);
  const before = await signIn(config, new UserAgent(), newPerson(), { register: true });
  const oldKid = jose.decodeProtectedHeader(before.tokens.id_token!).kid!;

  const added = await server.withServices((services) => services.keys.rotate());
  const newKid = added.find((key) => key.alg === 'RS256')!.kid;
  t.not(newKid, oldKid);

  const kids = await eventually(async () => {
    const { keys } = await (await fetch(`${server.issuer}/jwks`)).json() as { keys: Array<{ kid: string }> };
    const published = keys.map((key) => key.kid);
    return published.includes(newKid) ? published : undefined;
  }, { what: 'the new key in the JWKS', timeoutMs: 10_000 });
  t.true(kids.includes(oldKid), 'the retired key stays until its tokens expire');

  const after = await signIn(config, new UserAgent(), newPerson(), { register: true });
  t.is(jose.decodeProtectedHeader(after.tokens.id_token!).kid, newKid, 'new ID tokens are signed with the new key');
  const jwks = jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  await t.notThrowsAsync(jose.jwtVerify(before.tokens.id_token!, jwks, { issuer: server.issuer }), 'tokens signed before rotation still verify');
});

test('within the configured grace period a rotated refresh token can be used again without revoking the grant, and one lineage stays', async (t) => {
  const server = await startTestServer({ clients: [staticClient()], env: { REFRESH_REUSE_GRACE_SECONDS: '30' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const config = await discover(server.issuer);
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  const [a, b] = await Promise.all([
    oidc.refreshTokenGrant(config, tokens.refresh_token!),
    oidc.refreshTokenGrant(config, tokens.refresh_token!),
  ]);
  t.truthy(a.refresh_token);
  t.truthy(b.refresh_token);
  // The later answer replaced the earlier one as the rotated token's successor (no second lineage).
  const next = await Promise.allSettled([oidc.refreshTokenGrant(config, a.refresh_token!), oidc.refreshTokenGrant(config, b.refresh_token!)]);
  t.is(next.filter((result) => result.status === 'fulfilled').length, 1, 'the grant is intact, with one live refresh token');
});

test('a password hash made with older argon2 parameters is upgraded at the next successful sign-in', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const person = newPerson();
  const weak = await startTestServer({ dataDir, clients: [staticClient()], env: { ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' } });
  await signIn(await discover(weak.issuer), new UserAgent(), person, { register: true });
  const oldHash = await weak.withServices(async (services) => (await services.accounts.findByEmail(person.email))!.passwordHash ?? '');
  t.regex(oldHash, /^\$argon2id\$v=19\$m=8192,p=1,t=1\$/);
  await weak.close();
  await new Promise((resolve) => setTimeout(resolve, 300));

  const strong = await startTestServer({ dataDir, clients: [staticClient()], argon2: 'defaults' });
  t.teardown(() => strong.close());
  await signIn(await discover(strong.issuer), new UserAgent(), person);
  const newHash = await strong.withServices(async (services) => (await services.accounts.findByEmail(person.email))!.passwordHash ?? '');
  t.regex(newHash, /^\$argon2id\$v=19\$m=7168,p=1,t=5\$/);
  const again = await signIn(await discover(strong.issuer), new UserAgent(), person);
  t.is(again.tokens.claims()?.email, person.email, 'the upgraded hash verifies');
});

test('a disabled account can no longer sign in and its session stops counting', async (t) => {
  const server = await startTestServer({ clients: [staticClient()], });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const config = await discover(server.issuer);
  const person = newPerson();
  const agent = new UserAgent();
  await signIn(config, agent, person, { register: true });
  t.true(await server.withServices((services) => services.accounts.setDisabled(person.email, true)));
  await t.throwsAsync(signIn(config, new UserAgent(), person), { message: /expected a redirect to the RP, got 401/ });
  await t.throwsAsync(signIn(config, agent, person), { message: /expected a redirect to the RP, got 401/ }, 'the old session does not sign in silently');
});
