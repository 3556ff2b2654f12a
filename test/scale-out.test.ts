/**
 * Several Tessera processes on one store, as behind a load balancer: two instances on the same
 * SQLite file or MongoDB database (one issuer), and `WORKERS=2` on one machine. Whatever one
 * instance issues, rotates or revokes holds at the other.
 */
import http from 'node:http';

import test from 'ava';
import * as jose from 'jose';

import { runCliJson } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { startInstancePair, type StoreKind } from './helpers/instance-pair.ts';
import { authorizationRequest, authorize, discover, newPerson, RP_CALLBACK, signIn, staticClient, type AuthorizationRequest } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, type TestServer } from './helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer, workersReady, type LogLine } from './helpers/spawned-server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const client = staticClient();
const BASIC = `Basic ${btoa(`${String(client.client_id)}:${String(client.client_secret)}`)}`;

interface TokenAnswer {
  status: number;
  body: { access_token?: string; refresh_token?: string; id_token?: string; error?: string };
}

async function tokenRequest(server: TestServer, parameters: Record<string, string>): Promise<TokenAnswer> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: BASIC },
    body: new URLSearchParams(parameters),
  });
  return { status: response.status, body: (await response.json()) as TokenAnswer['body'] };
}

function codeGrant(request: AuthorizationRequest, callback: URL): Record<string, string> {
  return { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: RP_CALLBACK, code_verifier: request.verifier };
}

/** A person signs in through instance A's pages; returns the authorization request and the callback with the code. */
async function codeFromA(a: TestServer) {
  const request = await authorizationRequest(await discover(a.issuer));
  const callback = await authorize(new UserAgent(), request, newPerson(), { register: true });
  return { request, callback };
}

for (const kind of ['sqlite', 'mongodb'] as StoreKind[]) {
  test(`${kind}: a code issued by one instance is redeemed at the other, and a revocation at one holds at the other`, async (t) => {
    const { a, b, close } = await startInstancePair(kind, {}, { sharedIssuer: true });
    t.teardown(close);
    t.not(a.url, b.url);
    t.is(b.issuer, a.issuer, 'one issuer, as behind a load balancer');

    const { request, callback } = await codeFromA(a);
    const redeemed = await tokenRequest(b, codeGrant(request, callback));
    t.is(redeemed.status, 200, JSON.stringify(redeemed.body));
    const { payload } = await jose.jwtVerify(redeemed.body.id_token!, jose.createRemoteJWKSet(new URL(`${b.url}/jwks`)), {
      issuer: a.issuer,
      audience: String(client.client_id),
    });
    t.is(payload.nonce, request.nonce);
    // B's access token works at A; A rotates the refresh token; A revokes it; B refuses the grant.
    const userinfoAtA = await fetch(`${a.url}/me`, { headers: { authorization: `Bearer ${redeemed.body.access_token!}` } });
    t.is(userinfoAtA.status, 200);
    const rotated = await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: redeemed.body.refresh_token! });
    t.is(rotated.status, 200);
    const revocation = await fetch(`${a.url}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: BASIC },
      body: new URLSearchParams({ token: rotated.body.refresh_token!, token_type_hint: 'refresh_token' }),
    });
    t.is(revocation.status, 200);
    const refreshAtB = await tokenRequest(b, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token! });
    t.is(refreshAtB.status, 400, 'the refresh token revoked at A is refused at B');
    t.is(refreshAtB.body.error, 'invalid_grant');
    const userinfoAtB = await fetch(`${b.url}/me`, { headers: { authorization: `Bearer ${rotated.body.access_token!}` } });
    t.is(userinfoAtB.status, 401, 'revoking the refresh token revoked its grant, and the grant\'s access tokens, at B too');
    const replayed = await tokenRequest(a, codeGrant(request, callback));
    t.is(replayed.status, 400, 'the code redeemed at B is spent at A too');
    t.is(replayed.body.error, 'invalid_grant');
  });

  test(`${kind}: a key rotation made with the CLI is used for signing by both instances within the poll interval`, async (t) => {
    const { a, b, close } = await startInstancePair(kind, {}, { sharedIssuer: true });
    t.teardown(close);
    const pollSeconds = a.config.storePollSeconds;
    const rotated = await runCliJson<{ current: string[]; retired: string[] }>(a.cliEnv, ['keys', 'rotate']);
    const rotatedAt = Date.now();
    t.is(rotated.retired.length, 3, 'one key per signing family retired');
    const newKids = new Set(rotated.current);

    // B publishes it first (the JWKS), then signs with it.
    const seenAfterMs = await eventually(async () => {
      const { keys } = (await (await fetch(`${b.url}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      return keys.some((key) => newKids.has(key.kid)) ? Date.now() - rotatedAt : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    t.truthy(seenAfterMs, 'B publishes the new key');
    // One poll interval, plus slack for a loaded machine running other tests.
    t.true(seenAfterMs! <= pollSeconds * 1000 + 3000, `seen by B after ${seenAfterMs} ms (STORE_POLL_SECONDS=${pollSeconds})`);
    t.log(`${kind}: B signs with the rotated key ${seenAfterMs} ms after \`tessera keys rotate\` (STORE_POLL_SECONDS=${pollSeconds})`);

    for (const [name, instance] of [['B', b], ['A', a]] as const) {
      // The code comes from the issuer's pages (A's URLs); the ID token is signed where the code is redeemed.
      const { request, callback } = await codeFromA(a);
      const tokens = await tokenRequest(instance, codeGrant(request, callback));
      t.is(tokens.status, 200);
      t.true(newKids.has(jose.decodeProtectedHeader(tokens.body.id_token!).kid!), `${name} signs with the new key`);
    }
  });
}

/** GET on a new connection each time, so the primary hands each to a worker afresh. */
function getOnNewConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout: 5000 }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url} within 5 s`)));
    request.on('error', reject);
  });
}

test('WORKERS=2 serve runs two workers on one port, restarts one that dies, and stops both on SIGTERM', async (t) => {
  const dataDir = makeTempDir();
  const server = spawnServer({ dataDir, clients: [client], env: { WORKERS: '2' } });
  t.teardown(() => {
    killIfRunning(server);
    removeDir(dataDir);
  });
  const url = await listeningUrl(server);
  const ready = (line: LogLine) => line.msg === 'worker ready';
  const pids = new Set((await workersReady(server, 2)).map((line) => line.pid));
  t.is(pids.size, 2, 'two worker processes');
  t.false(pids.has(server.pid), 'the primary serves nothing itself');

  // Both serve one port, with one store: a whole sign-in works whichever worker each request reaches.
  const { tokens } = await signIn(await discover(url), new UserAgent(), newPerson(), { register: true });
  t.truthy(tokens.refresh_token);

  const [victim] = [...pids] as number[];
  process.kill(victim!, 'SIGKILL');
  // From the primary's notice on (a connection it hands over in the very instant a worker dies is
  // lost with it: Node's cluster has no way to take it back; the client's timeout and retry cover that).
  await server.waitForLine((line) => line.msg === 'worker died; restarting it' && line.pid === victim, 'the primary notices the death');
  const statuses: number[] = [];
  const restarted = server.waitForLine((line) => ready(line) && !pids.has(line.pid), 'a new worker ready', 20_000);
  let restartedLine: LogLine | undefined;
  void restarted.then((line) => (restartedLine = line), () => undefined);
  // The survivor keeps answering while the primary starts a successor.
  while (restartedLine === undefined && statuses.length < 400) {
    statuses.push(await getOnNewConnection(`${url}/healthz`));
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const successor = await restarted;
  t.true(statuses.length > 0 && statuses.every((status) => status === 200), `answers during the restart: ${[...new Set(statuses)].join(', ')}`);
  t.not(successor.pid, victim);

  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  t.is(code, 0, server.output());
  t.is(server.lines.filter((line) => line.msg === 'worker stopped').length, 2, 'both workers stopped gracefully');
  await t.throwsAsync(getOnNewConnection(`${url}/healthz`), { code: 'ECONNREFUSED' });
});
