/**
 * The device code under parallel polls, on both stores: polls are counted in the store, so of a
 * burst only one is answered (authorization_pending) and the rest are told slow_down; once the person
 * approved, the code is single use: of a burst of redemptions at most one gets tokens, and the
 * others, being reuses, revoke the grant and so whatever the winner got.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { runCliJson } from './helpers/cli.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { newPerson, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const LANES = ['sqlite', 'mongodb'] as const;
const PARALLEL = 6;
const NOWHERE = 'http://never.example/';

async function startLane(t: { teardown(fn: () => Promise<void>): void }, lane: typeof LANES[number]): Promise<TestServer> {
  const mongo = lane === 'mongodb' ? await startMongoLane() : undefined;
  // A long interval: the racing polls all fall inside one window, however slow the machine.
  const server = await startTestServer({ env: { DEVICE_POLL_INTERVAL: '30', ...(mongo && { MONGODB_URI: mongo.uri }) } });
  t.teardown(async () => {
    await server.close();
    await mongo?.stop();
    removeDir(server.dataDir);
  });
  return server;
}

async function poll(server: TestServer, clientId: string, deviceCode: string): Promise<{ status: number; error?: string; access_token?: string }> {
  const response = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: clientId }),
  });
  return { status: response.status, ...(await response.json() as { error?: string; access_token?: string }) };
}

/** Keep-alive connections opened first, so the racing requests reach the server together. */
async function warmConnections(server: TestServer): Promise<void> {
  await Promise.all(Array.from({ length: PARALLEL }, async () => (await fetch(`${server.issuer}/healthz`)).arrayBuffer()));
}

for (const lane of LANES) {
  test(`${lane}: of ${PARALLEL} parallel polls of a waiting device code one is answered and the rest are told slow_down; once approved, at most one redemption gets tokens, the rest invalid_grant, and that reuse revokes what the winner got`, async (t) => {
    const server = await startLane(t, lane);
    const created = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Race TV', '--grant', 'device_code', '--public', '--json']);
    await server.host.refresh();
    const device = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });

    await warmConnections(server);
    const waiting = await Promise.all(Array.from({ length: PARALLEL }, () => poll(server, created.client_id, started.device_code)));
    const errors = waiting.map((answer) => answer.error).sort();
    t.deepEqual(errors, ['authorization_pending', ...Array(PARALLEL - 1).fill('slow_down')]);

    const person = newPerson();
    await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }).then(() => undefined));
    const agent = new UserAgent();
    const form = await agent.request(started.verification_uri_complete!);
    const confirmation = await submit(agent, form, '/device', {}, NOWHERE);
    const login = await submit(agent, confirmation, '/device', { confirm: 'yes' }, NOWHERE);
    const consent = await submit(agent, login, '/login', { email: person.email, password: person.password }, NOWHERE);
    const done = await submit(agent, consent, '/consent', { decision: 'allow' }, NOWHERE);
    t.true(done.body.includes('Device connected'), done.body.slice(0, 500));

    await warmConnections(server);
    const redemptions = await Promise.all(Array.from({ length: PARALLEL }, () => poll(server, created.client_id, started.device_code)));
    // The code is consumed once (the store's compare-and-set); every other redemption is a reuse,
    // which revokes the grant (RFC 9700 section 4.14.2). Whether the winner's answer got out before
    // a loser's revocation is a matter of timing; that nothing it got survives is not.
    const winners = redemptions.filter((answer) => answer.status === 200);
    t.true(winners.length <= 1, JSON.stringify(redemptions));
    t.true(redemptions.filter((answer) => answer.status !== 200).every((answer) => answer.error === 'invalid_grant'), JSON.stringify(redemptions));
    for (const winner of winners) {
      const userinfo = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${winner.access_token!}` } });
      t.is(userinfo.status, 401);
    }
    const after = await poll(server, created.client_id, started.device_code);
    t.is(after.error, 'invalid_grant');
  });
}
