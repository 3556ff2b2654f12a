/**
 * SIGTERM, as a container runtime or systemd sends it: Tessera stops accepting connections at once,
 * lets the requests in flight finish, closes the store, and exits 0.
 */
import { existsSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import test from 'ava';

import { staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir } from './helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer } from './helpers/spawned-server.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';

function connect(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/healthz`, { agent: false, timeout: 5000 }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', reject);
  });
}

test('on SIGTERM a request in flight completes, new connections are refused, the store is closed and the exit code is 0', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const server = spawnServer({
    dataDir,
    clients: [staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, client_name: 'Our backend', tessera_first_party: true })],
  });
  t.teardown(() => killIfRunning(server));
  const url = await listeningUrl(server);
  t.is(await connect(url), 200);

  // A registration whose body arrives slowly: the request is in flight for as long as the test says.
  const email = `slow.${Date.now()}@example.com`;
  const body = Buffer.from(JSON.stringify({ email, password: 'a passphrase to register with during shutdown' }));
  let slowDone = false;
  const request = http.request(`${url}/api/accounts`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` },
  });
  const slow = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        slowDone = true;
        resolve({ status: response.statusCode ?? 0, body: text });
      });
    });
    request.on('error', reject);
  });
  request.write(body.subarray(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalledAt = Date.now();
  server.child.kill('SIGTERM');
  await server.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests', 'shutting down');

  // The listener is closed while the registration is still hashing.
  const refused = await t.throwsAsync(connect(url));
  t.is((refused as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  t.false(slowDone, 'the slow request was still in flight when new connections were refused');

  // The rest of the body, well after the signal: the request is still served.
  await new Promise((resolve) => setTimeout(resolve, 500));
  request.end(body.subarray(10));
  const answer = await slow;
  t.is(answer.status, 201, answer.body);
  const answeredAfterMs = Date.now() - signalledAt;
  const { code } = await server.exited;
  t.is(code, 0, server.output());
  t.truthy(server.lines.find((line) => line.msg === 'stopped'));
  // A closed SQLite database checkpoints its write-ahead log into the file and removes it.
  const wal = path.join(dataDir, 'tessera.db-wal');
  t.true(!existsSync(wal) || statSync(wal).size === 0, 'the store was closed cleanly');
  t.log(`the registration in flight at SIGTERM was answered 201 ${answeredAfterMs} ms after the signal`);

  // And it was kept: a restart finds the account (the email is taken).
  const again = spawnServer({ dataDir, clients: [staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, tessera_first_party: true })] });
  t.teardown(() => killIfRunning(again));
  const url2 = await listeningUrl(again);
  const duplicate = await fetch(`${url2}/api/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` },
    body: JSON.stringify({ email, password: 'a passphrase that takes a while to hash' }),
  });
  t.is(duplicate.status, 409);
  again.child.kill('SIGTERM');
  t.is((await again.exited).code, 0);
});
