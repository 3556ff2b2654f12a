/**
 * The edges of a process's life, as a container runtime or systemd sees them. Starting: requests
 * that reach the port before the store is open wait for it rather than hang. SIGTERM: Tessera stops
 * accepting connections at once, lets the requests in flight finish, closes the store, and exits 0.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import test from 'ava';

import { freePort } from './helpers/browser.ts';
import { eventually } from './helpers/eventually.ts';
import { startPausableEmulator } from './helpers/mongo-lane.ts';
import { staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir } from './helpers/server.ts';
import { killIfRunning, listeningUrl, spawnServer, workersReady, type SpawnedServer } from './helpers/spawned-server.ts';

const BACKEND_SECRET = 'first-party-backend-secret-with-plenty-of-entropy';

function connect(url: string, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/healthz`, { agent: false, timeout: timeoutMs }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    request.on('error', reject);
  });
}

/**
 * A registration (through the first-party registration API) whose body arrives slowly: the request
 * is in flight, and hashing afterwards, for as long as the test waits before `finish`.
 */
function slowRegistration(url: string, email: string) {
  const body = Buffer.from(JSON.stringify({ email, password: 'a passphrase to register with during shutdown' }));
  let answered = false;
  const request = http.request(`${url}/api/accounts`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Basic ${btoa(`backend:${BACKEND_SECRET}`)}` },
  });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        answered = true;
        resolve({ status: response.statusCode ?? 0, body: text });
      });
    });
    request.on('error', reject);
  });
  request.write(body.subarray(0, 10));
  return {
    answered: () => answered,
    finish() {
      request.end(body.subarray(10));
      return answer;
    },
  };
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

  const email = `slow.${Date.now()}@example.com`;
  const slow = slowRegistration(url, email);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalledAt = Date.now();
  server.child.kill('SIGTERM');
  await server.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests', 'shutting down');

  // The listener is closed while the registration is still hashing.
  const refused = await t.throwsAsync(connect(url));
  // Refused, or reset when the connection reached the backlog in the instant the listener closed.
  t.true(['ECONNREFUSED', 'ECONNRESET'].includes(String((refused as NodeJS.ErrnoException).code)), String(refused));
  t.false(slow.answered(), 'the slow request was still in flight when new connections were refused');

  // The rest of the body, well after the signal: the request is still served.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const answer = await slow.finish();
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

test('with workers, a SIGTERM sent to every process at once (systemd, pkill) is one request to stop: the request in flight completes and the exit code is 0', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const server = spawnServer({
    dataDir,
    env: { WORKERS: '2' },
    clients: [staticClient({ client_id: 'backend', client_secret: BACKEND_SECRET, tessera_first_party: true })],
  });
  t.teardown(() => killIfRunning(server));
  const workers = (await workersReady(server, 2)).map((line) => Number(line.pid));
  const url = await listeningUrl(server);
  const slow = slowRegistration(url, `slow.workers.${Date.now()}@example.com`);
  await new Promise((resolve) => setTimeout(resolve, 300));

  // The primary's message reaches the workers first, the signal sent to each of them right after:
  // systemd's default stop, and `pkill -f "tessera serve"`, signal the whole group that way.
  server.child.kill('SIGTERM');
  await server.waitForLine((line) => line.msg === 'shutting down: finishing in-flight requests' && line.signal === 'primary', 'a worker shutting down');
  for (const pid of workers) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Already gone: it had nothing in flight.
    }
  }

  const answer = await slow.finish();
  t.is(answer.status, 201, answer.body);
  const { code } = await server.exited;
  t.is(code, 0, whatItLogged(server));
});

test('with workers, a SIGTERM that reaches a worker as it exits, after it has stopped, is not a failed stop: the exit code is 0', async (t) => {
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const server = spawnServer({ dataDir, env: { WORKERS: '2' } });
  t.teardown(() => killIfRunning(server));
  const workers = (await workersReady(server, 2)).map((line) => Number(line.pid));
  await listeningUrl(server);

  server.child.kill('SIGTERM');
  // A worker's "stopped" line is written with its exit (log lines go out in batches, the last at
  // exit): a signal sent on seeing it reaches the worker as it tears down, or once it is gone.
  await server.waitForLine((line) => line.msg === 'stopped', 'a worker stopped');
  for (const pid of workers) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  const { code } = await server.exited;
  t.is(code, 0, whatItLogged(server));
});

/** A stopped server's output and log lines, access lines aside: what a failed stop is read from. */
function whatItLogged(server: SpawnedServer): string {
  return `${server.output()}\n${server.lines.filter((line) => line.msg !== 'request').map((line) => JSON.stringify(line)).join('\n')}`;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

test('a request that reaches the port while the store is still opening waits, and is answered once the server is ready', async (t) => {
  // A store that does not answer yet: the server listens (it must, to learn its port) but cannot be ready.
  const lane = await startPausableEmulator();
  t.teardown(() => lane.stop());
  await lane.pause();
  const dataDir = makeTempDir();
  t.teardown(() => removeDir(dataDir));
  const port = await freePort();
  const server = spawnServer({ dataDir, env: { PORT: String(port), MONGODB_URI: lane.uri, TESSERA_SECRET: randomBytes(32).toString('base64url') } });
  t.teardown(() => killIfRunning(server));
  const opened = await eventually(async () => (await portOpen(port)) || undefined, 20_000);
  if (!opened) throw new Error(`port ${port} never opened:\n${server.output()}`);

  let answeredAt: number | undefined;
  const early = connect(`http://localhost:${port}`).then((status) => {
    answeredAt = Date.now();
    return status;
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.is(answeredAt, undefined, 'no answer while the store is not open');
  const resumedAt = Date.now();
  lane.resume();
  // The server's own output goes with a failure: a dropped request says nothing about why.
  t.is(await early.catch((error: unknown) => {
    throw new Error(`the early request failed (${String(error)}); server output:\n${server.output()}\n${JSON.stringify(server.lines)}`);
  }), 200, 'answered, not dropped, once the server is ready');
  t.true(answeredAt! >= resumedAt);
  await server.waitForLine((line) => typeof line.msg === 'string' && line.msg.startsWith('Tessera is listening'), 'ready');
  t.log(`the request waited ${answeredAt! - resumedAt} ms after the store came back`);

  server.child.kill('SIGTERM');
  t.is((await server.exited).code, 0);
});
