/**
 * A Tessera process killed with SIGKILL in the middle of traffic loses nothing it acknowledged
 * (embedded store: SQLite in WAL mode with synchronous=FULL, one transaction per write).
 */
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';

import test from 'ava';

import { loadConfig } from '../src/config.ts';
import { buildServices } from '../src/services.ts';
import { openStore } from '../src/store/open-store.ts';
import { discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir } from './helpers/server.ts';
import { killIfRunning, listeningUrl, serverEnv, spawnServer, type SpawnOptions } from './helpers/spawned-server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';
const rp = staticClient();
const clients = [rp, staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true })];
const PASSWORD = 'a crash-proof passphrase of some length';
const CHAINS = 4;
const WRITERS = 4;
const TRAFFIC_MS = 2_500;

test('SIGKILL under traffic loses no acknowledged registration and no acknowledged refresh token', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const options: SpawnOptions = {
    dataDir,
    clients,
    env: {
      // Cheaper hashes, so more registrations are in flight when the process dies.
      ARGON2_MEMORY_KIB: '8192',
      ARGON2_TIME_COST: '1',
      // A refresh whose answer the kill swallowed may have rotated the token already: the client
      // retries with the token it holds, which is what the grace period is for.
      REFRESH_REUSE_GRACE_SECONDS: '60',
    },
  };
  const first = spawnServer(options);
  t.teardown(() => killIfRunning(first));
  const url = await listeningUrl(first);
  const port = new URL(url).port;

  const configuration = await discover(url, rp);
  const latest: string[] = [];
  for (let chain = 0; chain < CHAINS; chain += 1) {
    const { tokens } = await signIn(configuration, new UserAgent(), newPerson(), { register: true });
    latest.push(tokens.refresh_token!);
  }

  const registered: string[] = [];
  let inFlight = 0;
  let killed = false;
  const basic = (id: string, secret: string) => `Basic ${btoa(`${id}:${secret}`)}`;
  const refreshes = { acknowledged: 0 };

  async function registrations(writer: number) {
    for (let index = 0; !killed; index += 1) {
      const email = `crash.${writer}.${index}.${Date.now()}@example.com`;
      inFlight += 1;
      try {
        const response = await fetch(`${url}/api/accounts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: basic('backend', BACKEND_SECRET) },
          body: JSON.stringify({ email, password: PASSWORD }),
        });
        if (response.status === 201) registered.push(email);
        else if (!killed) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
      } catch (error) {
        if (!killed) throw error;
      } finally {
        inFlight -= 1;
      }
    }
  }

  async function rotations(chain: number) {
    while (!killed) {
      inFlight += 1;
      try {
        const response = await fetch(`${url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(String(rp.client_id), String(rp.client_secret)) },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: latest[chain]! }),
        });
        const body = (await response.json()) as { refresh_token?: string };
        // Acknowledged: the client holds the new token from here on.
        if (response.status === 200 && body.refresh_token) {
          latest[chain] = body.refresh_token;
          refreshes.acknowledged += 1;
        } else if (!killed) {
          throw new Error(`refresh answered ${response.status}: ${JSON.stringify(body)}`);
        }
      } catch (error) {
        if (!killed) throw error;
      } finally {
        inFlight -= 1;
      }
    }
  }

  const traffic = Promise.all([
    ...Array.from({ length: WRITERS }, (_, writer) => registrations(writer)),
    ...Array.from({ length: CHAINS }, (_, chain) => rotations(chain)),
  ]);
  await new Promise((resolve) => setTimeout(resolve, TRAFFIC_MS));
  const inFlightAtKill = inFlight;
  killed = true;
  first.child.kill('SIGKILL');
  t.is((await first.exited).signal, 'SIGKILL');
  await traffic;
  t.true(registered.length > 0 && refreshes.acknowledged > 0, 'traffic was acknowledged before the kill');

  const file = path.join(dataDir, 'tessera.db');
  const check = new DatabaseSync(file, { readOnly: true });
  t.is((check.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
  check.close();

  // Restart on the same data, on the same port (the issuer stays the same).
  const second = spawnServer({ ...options, env: { ...options.env, PORT: port } });
  t.teardown(() => killIfRunning(second));
  await listeningUrl(second);

  const config = loadConfig(serverEnv({ ...options, env: { ...options.env, PORT: port, LOG_LEVEL: 'silent' } }));
  const store = await openStore(config);
  try {
    const services = buildServices(config, store);
    const missing: string[] = [];
    for (const email of registered) {
      await services.accounts.authenticate(email, PASSWORD).catch(() => missing.push(email));
    }
    t.deepEqual(missing, [], 'every acknowledged account exists and its password works');
  } finally {
    await store.close();
  }
  const person = { email: registered[0]!, password: PASSWORD };
  const { tokens } = await signIn(await discover(url, rp), new UserAgent(), person);
  t.is(tokens.claims()?.email, person.email, 'an account registered before the kill signs in after it');

  for (const [chain, token] of latest.entries()) {
    const response = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(String(rp.client_id), String(rp.client_secret)) },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }),
    });
    t.is(response.status, 200, `chain ${chain}: the last acknowledged refresh token works: ${await response.text()}`);
  }
  t.log(`acknowledged before SIGKILL: ${registered.length} registrations, ${refreshes.acknowledged} refresh rotations; ${inFlightAtKill} requests in flight at the kill`);

  second.child.kill('SIGTERM');
  t.is((await second.exited).code, 0);
});
