/**
 * What a copy of the store gives away (issue #10, item 2): the SQLite file and its directory are
 * owner-only, and neither the file nor the MongoDB collection holds a working token, code or
 * session cookie: records are keyed by digests of their values.
 */
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

import test, { type ExecutionContext } from 'ava';
import mongoose from 'mongoose';

import { cliInstallation } from './helpers/cli.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { discover, newPerson, signIn, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const client = staticClient();
const BASIC = `Basic ${btoa(`${String(client.client_id)}:${String(client.client_secret)}`)}`;

const modeOf = (file: string) => statSync(file).mode & 0o777;

/** Signs a person in and returns every secret value the flow handed out. */
async function secretsOfAFlow(server: TestServer) {
  const agent = new UserAgent();
  const { tokens, callback } = await signIn(await discover(server.issuer), agent, newPerson(), { register: true });
  // The refresh token in use is a rotated one too; both must be absent.
  const refreshed = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: BASIC },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
  });
  const rotated = (await refreshed.json()) as { access_token: string; refresh_token: string };
  const cookies = Object.fromEntries(agent.cookieHeader().split('; ').map((pair) => pair.split('=') as [string, string]));
  const values: Record<string, string> = {
    'access token': tokens.access_token,
    'refresh token': tokens.refresh_token!,
    'rotated access token': rotated.access_token,
    'rotated refresh token': rotated.refresh_token,
    code: callback.searchParams.get('code')!,
  };
  // The session cookie signs a person in. (The interaction cookie's value is the interaction's uid,
  // which is in the sign-in pages' URLs anyway, and alone signs no one in.)
  for (const [name, value] of Object.entries(cookies)) if (name.startsWith('_session') && !name.endsWith('.sig')) values[`cookie ${name}`] = value;
  return values;
}

/** Every string in the stored records that could be tried as a credential. */
function candidates(records: Array<{ id: string; payload: string }>): string[] {
  const found = new Set<string>();
  for (const { id, payload } of records) {
    found.add(id);
    for (const match of payload.matchAll(/"([A-Za-z0-9_-]{20,})"/g)) found.add(match[1]!);
  }
  return [...found];
}

/** Nothing read from the store works as a bearer token at /me or as a refresh token. */
async function noneWorks(t: ExecutionContext, server: TestServer, values: string[]) {
  t.true(values.length > 5, `records were read (${values.length} candidate values)`);
  for (const value of values) {
    const me = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${value}` } });
    t.is(me.status, 401, `a value from the store works at /me: ${value}`);
    const refresh = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: BASIC },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: value }),
    });
    t.is(refresh.status, 400, `a value from the store works as a refresh token: ${value}`);
  }
}

test('sqlite: neither the database file nor its WAL holds a token, code or session cookie, and no value in it works', async (t) => {
  const server = await startTestServer({ clients: [client] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const secrets = await secretsOfAFlow(server);
  t.truthy(secrets['cookie _session'], 'the browser holds a session cookie');

  const file = path.join(server.dataDir, 'tessera.db');
  const bytes = [file, `${file}-wal`].filter(existsSync).map((name) => readFileSync(name).toString('latin1')).join('');
  for (const [what, value] of Object.entries(secrets)) {
    const at = bytes.indexOf(value);
    t.false(at >= 0, `the ${what} is in the SQLite file: ${JSON.stringify(bytes.slice(Math.max(0, at - 300), at + 100))}`);
  }

  const reader = new DatabaseSync(file, { readOnly: true });
  const records = reader.prepare('SELECT id, payload FROM oidc').all() as Array<{ id: string; payload: string }>;
  reader.close();
  await noneWorks(t, server, candidates(records));
});

test('mongodb: the oidc collection holds no token, code or session cookie, and no value in it works', async (t) => {
  const lane = await startMongoLane();
  const server = await startTestServer({ clients: [client], env: { MONGODB_URI: lane.uri } });
  t.teardown(async () => {
    await server.close();
    await lane.stop();
    removeDir(server.dataDir);
  });
  const secrets = await secretsOfAFlow(server);

  const connection = await mongoose.createConnection(lane.uri, { autoCreate: false, autoIndex: false }).asPromise();
  const documents = await connection.collection('oidc').find({}).toArray();
  await connection.close();
  const dump = JSON.stringify(documents);
  for (const [what, value] of Object.entries(secrets)) t.false(dump.includes(value), `the ${what} is in the collection`);
  await noneWorks(t, server, candidates(documents.map((document) => ({
    id: String(document._id).slice(String(document.model).length + 1),
    payload: JSON.stringify(document.payload),
  }))));
});

test('a new DATA_DIR is owner-only, and so are the database, its WAL and the generated secret', async (t) => {
  const installation = cliInstallation(t);
  const dataDir = path.join(installation.dataDir, 'fresh');
  const env = { ...installation.env, DATA_DIR: dataDir };
  const created = await installation.cli(['clients', 'create', '--name', 'Modes', '--redirect-uri', 'https://rp.example/cb', '--json'], { env });
  t.is(created.code, 0, created.stderr);
  t.false(created.stderr.includes('warning'), created.stderr);
  t.is(modeOf(dataDir), 0o700);
  t.is(modeOf(path.join(dataDir, 'tessera.db')), 0o600);
  t.is(modeOf(path.join(dataDir, 'secret')), 0o600);

  // While a server runs, the WAL and shared-memory files exist; they follow the database's mode.
  const server = await startTestServer({ dataDir, clients: [client] });
  t.teardown(() => server.close());
  await signIn(await discover(server.issuer), new UserAgent(), newPerson(), { register: true });
  for (const suffix of ['-wal', '-shm']) {
    const file = path.join(dataDir, `tessera.db${suffix}`);
    t.true(existsSync(file), `${suffix} exists while the server runs`);
    t.is(modeOf(file), 0o600, suffix);
  }
});

test('an existing DATA_DIR open to others gets a warning at startup, and files from before are narrowed to owner-only', async (t) => {
  const installation = cliInstallation(t);
  const created = await installation.cli(['clients', 'create', '--name', 'Modes', '--redirect-uri', 'https://rp.example/cb', '--json']);
  t.is(created.code, 0, created.stderr);
  const database = path.join(installation.dataDir, 'tessera.db');
  const secret = path.join(installation.dataDir, 'secret');
  // As an older Tessera left them.
  chmodSync(installation.dataDir, 0o755);
  chmodSync(database, 0o644);
  chmodSync(secret, 0o644);

  const listed = await installation.cli(['clients', 'list']);
  t.is(listed.code, 0, listed.stderr);
  t.true(
    listed.stderr.includes(`tessera: warning: DATA_DIR ${installation.dataDir} is accessible to other users (mode 0755); make it owner-only: chmod 700 ${installation.dataDir}`),
    listed.stderr,
  );
  t.is(modeOf(installation.dataDir), 0o755, 'the operator\'s directory is left as it is');
  t.is(modeOf(database), 0o600);
  t.is(modeOf(secret), 0o600);

  const lines: string[] = [];
  const server = await startTestServer({
    dataDir: installation.dataDir,
    env: { LOG_LEVEL: 'warn' },
    logDestination: { write: (line: string) => void lines.push(line) },
  });
  t.teardown(() => server.close());
  t.true(lines.some((line) => line.includes('is accessible to other users (mode 0755)')), lines.join(''));
});
