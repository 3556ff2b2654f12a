/**
 * Single use under concurrency (issue #10): parallel redemptions of one authorization code, parallel
 * refreshes of one refresh token, and a pushed request_uri opened twice, at a real server on each
 * store: SQLite in one process, SQLite under WORKERS=2 (two processes on one file), MongoDB.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { startMongoLane } from './helpers/mongo-lane.ts';
import { authorizationRequest, authorize, discover, newPerson, RP_CALLBACK, signIn, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer, workersReady } from './helpers/spawned-server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const client = staticClient();
const BASIC = `Basic ${btoa(`${String(client.client_id)}:${String(client.client_secret)}`)}`;
const PARALLEL_CODES = 10;
const PARALLEL_REFRESHES = 4;

interface Lane {
  url: string;
  close(): Promise<void>;
}

type LaneName = 'sqlite' | 'sqlite WORKERS=2' | 'mongodb';
const LANES: LaneName[] = ['sqlite', 'sqlite WORKERS=2', 'mongodb'];

async function startLane(name: LaneName, env: Record<string, string> = {}): Promise<Lane> {
  if (name === 'sqlite WORKERS=2') {
    const dataDir = makeTempDir();
    const server = spawnServer({ dataDir, clients: [client], env: { WORKERS: '2', ...env } });
    try {
      const url = await listeningUrl(server);
      await workersReady(server, 2);
      return {
        url,
        async close() {
          server.child.kill('SIGTERM');
          await server.exited;
          removeDir(dataDir);
        },
      };
    } catch (error) {
      killIfRunning(server);
      removeDir(dataDir);
      throw error;
    }
  }
  const mongo = name === 'mongodb' ? await startMongoLane() : undefined;
  const server = await startTestServer({ clients: [client], env: { ...env, ...(mongo && { MONGODB_URI: mongo.uri }) } });
  return {
    url: server.url,
    async close() {
      await server.close();
      await mongo?.stop();
      removeDir(server.dataDir);
    },
  };
}

interface TokenAnswer {
  status: number;
  body: { access_token?: string; refresh_token?: string; error?: string; error_description?: string };
}

async function tokenRequest(url: string, parameters: Record<string, string>): Promise<TokenAnswer> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: BASIC },
    body: new URLSearchParams(parameters),
  });
  return { status: response.status, body: (await response.json()) as TokenAnswer['body'] };
}

async function userinfoStatus(url: string, accessToken: string): Promise<number> {
  const response = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  await response.arrayBuffer();
  return response.status;
}

/**
 * Opens `count` keep-alive connections first, so the racing requests that follow go out on open
 * sockets and reach the server in the same instant, instead of one TCP handshake apart.
 */
async function warmConnections(url: string, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, async () => (await fetch(`${url}/healthz`)).arrayBuffer()));
}

const refresh = (url: string, token: string) => tokenRequest(url, { grant_type: 'refresh_token', refresh_token: token });

for (const lane of LANES) {
  test(`${lane}: of ${PARALLEL_CODES} parallel redemptions of one code exactly one succeeds, and the grant is revoked`, async (t) => {
    const server = await startLane(lane);
    t.teardown(() => server.close());
    const request = await authorizationRequest(await discover(server.url));
    const callback = await authorize(new UserAgent(), request, newPerson(), { register: true });
    const grant = { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: RP_CALLBACK, code_verifier: request.verifier };

    await warmConnections(server.url, PARALLEL_CODES);
    const answers = await Promise.all(Array.from({ length: PARALLEL_CODES }, () => tokenRequest(server.url, grant)));
    const winners = answers.filter((answer) => answer.status === 200);
    t.is(winners.length, 1, JSON.stringify(answers.map((answer) => answer.status)));
    t.true(answers.filter((answer) => answer.status !== 200).every((answer) => answer.status === 400 && answer.body.error === 'invalid_grant'));
    // RFC 6749 section 4.1.2: a code used twice revokes what it issued; the winner's tokens stop working.
    t.is(await userinfoStatus(server.url, winners[0]!.body.access_token!), 401, 'the winner access token is revoked');
    t.is((await refresh(server.url, winners[0]!.body.refresh_token!)).body.error, 'invalid_grant', 'the winner refresh token is revoked');
  });

  test(`${lane}: of ${PARALLEL_REFRESHES} parallel refreshes of one token at most one succeeds, and the reuse revokes the grant`, async (t) => {
    const server = await startLane(lane);
    t.teardown(() => server.close());
    const { tokens } = await signIn(await discover(server.url), new UserAgent(), newPerson(), { register: true });

    await warmConnections(server.url, PARALLEL_REFRESHES);
    const answers = await Promise.all(Array.from({ length: PARALLEL_REFRESHES }, () => refresh(server.url, tokens.refresh_token!)));
    const winners = answers.filter((answer) => answer.status === 200);
    t.true(winners.length <= 1, JSON.stringify(answers.map((answer) => answer.status)));
    t.true(answers.filter((answer) => answer.status !== 200).every((answer) => answer.status === 400 && answer.body.error === 'invalid_grant'));
    // RFC 9700 section 4.14.2: a rotated token presented again revokes the grant, the winner's new tokens included.
    for (const winner of winners) {
      t.is((await refresh(server.url, winner.body.refresh_token!)).body.error, 'invalid_grant', 'the winner lineage is revoked');
      t.is(await userinfoStatus(server.url, winner.body.access_token!), 401, 'the winner access token is revoked');
    }
    t.is(await userinfoStatus(server.url, tokens.access_token), 401, 'the first access token is revoked');
  });
}

for (const lane of ['sqlite', 'mongodb'] as const) {
  test(`${lane}: within the reuse grace period parallel refreshes all answer, and exactly one of the new refresh tokens stays alive`, async (t) => {
    const server = await startLane(lane, { REFRESH_REUSE_GRACE_SECONDS: '30', LOG_LEVEL: 'error' });
    t.teardown(() => server.close());
    const { tokens } = await signIn(await discover(server.url), new UserAgent(), newPerson(), { register: true });

    const answers = await Promise.all(Array.from({ length: PARALLEL_REFRESHES }, () => refresh(server.url, tokens.refresh_token!)));
    t.deepEqual(answers.map((answer) => answer.status), answers.map(() => 200), JSON.stringify(answers.map((answer) => answer.body)));
    // Each answer replaced the one before as the rotated token's successor: one lineage, not four.
    const next = await Promise.all(answers.map((answer) => refresh(server.url, answer.body.refresh_token!)));
    t.is(next.filter((answer) => answer.status === 200).length, 1, JSON.stringify(next.map((answer) => answer.body)));
    t.true(next.filter((answer) => answer.status !== 200).every((answer) => answer.body.error === 'invalid_grant'));
    const survivor = next.find((answer) => answer.status === 200)!;
    t.is((await refresh(server.url, survivor.body.refresh_token!)).status, 200, 'the grant is intact');
  });
}

test('sqlite: within the grace period, presenting a rotated token again after its successor was used revokes the grant', async (t) => {
  const server = await startLane('sqlite', { REFRESH_REUSE_GRACE_SECONDS: '30' });
  t.teardown(() => server.close());
  const { tokens } = await signIn(await discover(server.url), new UserAgent(), newPerson(), { register: true });
  const first = await refresh(server.url, tokens.refresh_token!);
  const second = await refresh(server.url, first.body.refresh_token!);
  t.is(second.status, 200);

  const replayed = await refresh(server.url, tokens.refresh_token!);
  t.is(replayed.status, 400);
  t.is(replayed.body.error, 'invalid_grant');
  t.is((await refresh(server.url, second.body.refresh_token!)).body.error, 'invalid_grant', 'the grant is revoked');
});

async function pushedRequest(url: string) {
  const config = await discover(url);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const authorizationUrl = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: RP_CALLBACK, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce,
  });
  return { config, request: { url: authorizationUrl, verifier, state, nonce } };
}

/** Where opening the authorization URL leads: an interaction (the request is accepted) or anything else. */
async function opens(url: URL): Promise<boolean> {
  const response = await fetch(url, { redirect: 'manual' });
  await response.arrayBuffer();
  return response.status === 303 || response.status === 302 ? (response.headers.get('location') ?? '').includes('/interaction/') : false;
}

for (const lane of ['sqlite', 'mongodb'] as const) {
  test(`${lane}: a pushed request_uri opens once: a second open before the sign-in completes is refused, parallel opens let one through`, async (t) => {
    const server = await startLane(lane);
    t.teardown(() => server.close());

    const first = await pushedRequest(server.url);
    t.true(await opens(first.request.url), 'the first open starts an authorization');
    t.false(await opens(first.request.url), 'RFC 9126 section 4: the request_uri is used once');

    const raced = await pushedRequest(server.url);
    const results = await Promise.all(Array.from({ length: 5 }, () => opens(raced.request.url)));
    t.is(results.filter(Boolean).length, 1, JSON.stringify(results));

    // The whole flow still works with the one open it gets.
    const flow = await pushedRequest(server.url);
    const callback = await authorize(new UserAgent(), flow.request, newPerson(), { register: true });
    const tokens = await oidc.authorizationCodeGrant(flow.config, callback, { pkceCodeVerifier: flow.request.verifier, expectedState: flow.request.state, expectedNonce: flow.request.nonce });
    t.truthy(tokens.id_token);
    t.false(await opens(flow.request.url), 'nor after it completed');
  });
}
