/**
 * The audit trail through the real surface: flows against a running server (sign-ins right and
 * wrong, a lockout, consent, the code exchange, a refresh, a revocation, machine tokens) and
 * operator commands (`tessera clients create`, `keys rotate`) land in the store, and
 * `tessera audit --json` finds them by account, client, type and time, a page at a time. Machine
 * tokens are counted, not recorded. Nothing secret is in any event.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

import test from 'ava';
import * as oidc from 'openid-client';

import type { SecurityEventType } from '../src/domain/events.ts';
import { runCli, runCliJson } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { attemptSignIn } from './helpers/login-form.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { discover, newPerson, RP_HOME, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

const API = 'https://api.example.com';
const WRONG = 'not the right password at all';

interface PublicEvent {
  id: string;
  type: SecurityEventType;
  at: string;
  sub?: string;
  client_id?: string;
  ip?: string;
  request_id?: string;
  details?: Record<string, unknown>;
}

interface Page {
  events: PublicEvent[];
  next?: string;
}

/** Events are written right after they happen, off the request path: wait until `count` of `type` are there. */
async function waitForEvent(server: TestServer, type: SecurityEventType, count = 1): Promise<void> {
  const found = await eventually(async () => {
    const page = await server.withServices(({ audit }) => audit.query({ type, limit: count }));
    return page.events.length >= count ? true : undefined;
  }, 5_000);
  if (!found) throw new Error(`no ${count} ${type} event(s) within 5 s`);
}

test('security events land in the store and tessera audit finds them by account, client, type and time, with nothing secret in them', async (t) => {
  const rpClient = staticClient();
  const server = await startTestServer({ clients: [rpClient], env: { LOCKOUT_THRESHOLD: '2', AUDIT_RETENTION_DAYS: '7' } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const audit = (args: string[]) => runCliJson<Page>(server.cliEnv, ['audit', ...args]);
  const alice = newPerson();
  const bob = newPerson();
  const machine = await server.withServices(async ({ accounts, resources, clients }) => {
    await accounts.register({ email: alice.email, password: alice.password });
    await accounts.register({ email: bob.email, password: bob.password });
    await resources.create({ audience: API, scopes: ['orders:read'], format: 'jwt', ttlSeconds: 300 });
    return clients.createMachineClient({ name: 'audit-svc', auth: 'client_secret_basic', resources: { [API]: ['orders:read'] } });
  });
  const [aliceSub, bobSub] = await server.withServices(async ({ accounts }) => [
    (await accounts.findByEmail(alice.email))!.sub,
    (await accounts.findByEmail(bob.email))!.sub,
  ]);

  // People: a wrong password, a sign-in with consent and a code exchange, a refresh, a revocation.
  t.is((await attemptSignIn(server, alice.email, WRONG)).status, 401);
  const rp = await discover(server.issuer, rpClient);
  const browser = new UserAgent();
  const { tokens, callback } = await signIn(rp, browser, alice);
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
  await oidc.tokenRevocation(rp, refreshed.refresh_token!);
  // And signs out at the RP (RP-initiated logout, confirmed on Tessera's page).
  const confirm = await browser.follow(oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: RP_HOME }).href, RP_HOME);
  const logout = readForm(confirm.body, 'session/end/confirm');
  t.is((await browser.follow(new URL(logout.action, confirm.url).href, RP_HOME, { form: { ...logout.fields, logout: 'yes' } })).status, 303);
  // Bob locks himself out (threshold 2), then tries once more while locked.
  for (let i = 0; i < 3; i += 1) t.is((await attemptSignIn(server, bob.email, WRONG)).status, 401);
  // Machine tokens: counted in /metrics, never recorded one by one.
  const service = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret!), { execute: [oidc.allowInsecureRequests] });
  const machineToken = await oidc.clientCredentialsGrant(service, { scope: 'orders:read' });
  await oidc.clientCredentialsGrant(service, { scope: 'orders:read' });
  // Operators: a client created and keys rotated from the command line.
  const midpoint = new Date();
  const created = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Audited app', '--redirect-uri', 'https://app.example.com/cb']);
  await runCliJson(server.cliEnv, ['keys', 'rotate']);
  await waitForEvent(server, 'session.ended');
  await waitForEvent(server, 'account.locked');
  // Alice's wrong password and Bob's three attempts, the last refused as locked.
  await waitForEvent(server, 'signin.failed', 4);

  // By account: everything about alice, newest first.
  const aliceEvents = (await audit(['--email', alice.email])).events;
  t.true(aliceEvents.every((event) => event.sub === aliceSub));
  t.deepEqual(
    aliceEvents.map((event) => event.type).reverse(),
    ['account.created', 'signin.failed', 'signin.succeeded', 'consent.given', 'token.issued', 'token.issued', 'token.revoked', 'session.ended'],
  );
  const times = aliceEvents.map((event) => Date.parse(event.at));
  t.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
  t.deepEqual((await audit(['--sub', aliceSub])).events, aliceEvents, '--sub finds the same');
  const failed = aliceEvents.find((event) => event.type === 'signin.failed')!;
  t.like(failed, { client_id: 'test-rp', ip: '127.0.0.1', details: { reason: 'wrong_password', factor: 'password' } });
  t.regex(failed.request_id ?? '', /^[\w-]{36}$/, 'events of a request carry its request id');
  t.like(aliceEvents.find((event) => event.type === 'signin.succeeded'), { client_id: 'test-rp', details: { amr: ['pwd'] } });
  t.like(aliceEvents.find((event) => event.type === 'consent.given'), { client_id: 'test-rp', details: { scopes: ['openid', 'profile', 'email', 'offline_access'] } });
  t.like(aliceEvents.find((event) => event.type === 'token.revoked'), { client_id: 'test-rp', details: { tokenType: 'refresh_token', reason: 'revocation_endpoint' } });
  t.like(aliceEvents.find((event) => event.type === 'session.ended'), { client_id: 'test-rp', details: { reason: 'signed_out' } });

  // By client and type: the code exchange and the refresh; machine tokens are not there.
  const issued = (await audit(['--client', 'test-rp', '--type', 'token.issued'])).events;
  t.deepEqual(issued.map((event) => event.details?.grantType), ['refresh_token', 'authorization_code']);
  t.true(issued.every((event) => event.sub === aliceSub && event.details?.refreshToken === true && event.details?.idToken === true));
  t.deepEqual((await audit(['--client', machine.client_id, '--type', 'token.issued'])).events, []);
  t.deepEqual((await audit(['--client', machine.client_id])).events.map((event) => event.type), ['client.created']);
  t.like((await audit(['--type', 'resource.created'])).events, [{ details: { audience: API, scopes: ['orders:read'], format: 'jwt' } }]);

  // By type: the lockout, and the attempt refused because of it.
  const locked = (await audit(['--type', 'account.locked'])).events;
  t.is(locked.length, 1);
  t.is(locked[0]!.sub, bobSub);
  t.deepEqual((await audit(['--sub', bobSub, '--type', 'signin.failed'])).events.map((event) => event.details?.reason), ['locked', 'wrong_password', 'wrong_password']);

  // By time, and what the command line did: no request, so no address or request id.
  const later = (await audit(['--since', midpoint.toISOString()])).events;
  t.deepEqual(later.map((event) => event.type), ['key.rotated', 'client.created']);
  t.is(later[1]!.client_id, created.client_id);
  t.is(later[1]!.ip, undefined);
  t.is(later[1]!.request_id, undefined);
  t.deepEqual((await audit(['--until', midpoint.toISOString(), '--type', 'key.rotated'])).events.map((event) => event.details?.initial), [true]);

  // Pages: three at a time until there is no next cursor, together exactly the whole trail.
  const all = (await audit(['--limit', '1000'])).events;
  const paged: PublicEvent[] = [];
  let next: string | undefined;
  do {
    const page = await audit(['--limit', '3', ...(next ? ['--before', next] : [])]);
    paged.push(...page.events);
    next = page.next;
    t.true(page.events.length <= 3);
  } while (next);
  t.deepEqual(paged, all);
  t.true(all.length >= 15, `${all.length} events`);

  // Nothing secret anywhere in the trail.
  const secrets = [
    alice.password, bob.password, WRONG, String(rpClient.client_secret), machine.client_secret!, created.client_secret,
    callback.searchParams.get('code')!, tokens.access_token, tokens.refresh_token!, tokens.id_token!,
    refreshed.access_token, refreshed.refresh_token!, refreshed.id_token!, machineToken.access_token,
  ];
  const trail = JSON.stringify(all);
  for (const secret of secrets) t.false(trail.includes(secret), 'a secret is in the audit trail');

  // Kept for AUDIT_RETENTION_DAYS.
  const database = new DatabaseSync(path.join(server.dataDir, 'tessera.db'), { readOnly: true });
  t.teardown(() => database.close());
  const row = database.prepare('SELECT at, expires_at FROM audit_events LIMIT 1').get() as { at: number; expires_at: number };
  t.is(row.expires_at - row.at, 7 * 86_400_000);
});

test('tessera audit refuses an unknown type, a bad time, a bad cursor and both --email and --sub, each with one line', async (t) => {
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const cases: Array<[string[], number, RegExp]> = [
    [['--type', 'signin.maybe'], 2, /unknown event type "signin\.maybe"/],
    [['--since', 'yesterday'], 2, /--since must be an ISO 8601 time/],
    [['--limit', 'ten'], 2, /--limit must be a number/],
    [['--limit', '5000'], 1, /limit must be a whole number from 1 to 1000/],
    [['--before', 'not-a-cursor'], 1, /before must be the next cursor of an earlier page/],
    [['--email', 'a@example.com', '--sub', 'x'], 2, /give --email or --sub, not both/],
    [['--email', 'nobody@example.com'], 1, /no user with the email nobody@example\.com/],
  ];
  for (const [args, code, message] of cases) {
    const result = await runCli(server.cliEnv, ['audit', ...args, '--json']);
    t.is(result.code, code, args.join(' '));
    t.regex(result.stderr, message);
    t.is(result.stderr.trim().split('\n').length, 1);
    t.is(result.stdout, '');
  }
  const empty = await runCli(server.cliEnv, ['audit', '--type', 'account.locked']);
  t.is(empty.code, 0);
  t.is(empty.stdout, 'No events match.\n');
});

test('on MongoDB too, events from the server and the command line are found by account and type', async (t) => {
  const lane = await startMongoLane();
  const server = await startTestServer({ clients: [staticClient()], env: { MONGODB_URI: lane.uri, LOCKOUT_THRESHOLD: '2' } });
  t.teardown(async () => {
    await server.close();
    await lane.stop();
    removeDir(server.dataDir);
  });
  const person = newPerson();
  const sub = await server.withServices(async ({ accounts }) => (await accounts.register({ email: person.email, password: person.password })).sub);
  for (let i = 0; i < 2; i += 1) t.is((await attemptSignIn(server, person.email, WRONG)).status, 401);
  await runCliJson(server.cliEnv, ['users', 'unlock', person.email]);
  await waitForEvent(server, 'account.locked');
  await waitForEvent(server, 'signin.failed', 2);

  const events = (await runCliJson<Page>(server.cliEnv, ['audit', '--email', person.email])).events;
  t.deepEqual(events.map((event) => event.type), ['account.unlocked', 'account.locked', 'signin.failed', 'signin.failed', 'account.created'], 'newest first; a lockout after the failure that caused it');
  t.true(events.every((event) => event.sub === sub));
  t.like((await runCliJson<Page>(server.cliEnv, ['audit', '--type', 'account.locked'])).events, [{ sub }]);
});
