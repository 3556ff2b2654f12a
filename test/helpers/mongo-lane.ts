/**
 * A MongoDB for one test (or one suite): a fresh database on the server named by MONGODB_URI, or
 * else a private jongodb emulator started for this lane. Either way the caller gets a URI nobody
 * else writes to, and stop() leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import mongoose from 'mongoose';

export interface MongoLane {
  readonly uri: string;
  stop(): Promise<void>;
}

/** A private emulator that can be frozen, for outage tests. */
export interface PausableMongoLane extends MongoLane {
  /**
   * Freezes the emulator (SIGSTOP): its connections stay open but nothing answers, as in a network
   * partition. (Killing it would lose its data: the emulator keeps everything in memory.) Resolves
   * once every thread of it has stopped (/proc says T): on a loaded machine a request sent right
   * after the signal was once still answered.
   */
  pause(): Promise<void>;
  /** Thaws it (SIGCONT): it answers again, with all its data. */
  resume(): void;
}

const EMULATOR_PACKAGE = '@jongodb/memory-server-bin-linux-x64-gnu';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const COMMAND_NOT_FOUND = 59;

/** Emulators still running, killed when this process exits however a test run ends. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startMongoLane(): Promise<MongoLane> {
  const database = `tessera_test_${randomBytes(6).toString('hex')}`;
  const shared = process.env.MONGODB_URI;
  if (shared !== undefined && shared !== '') return useSharedServer(withDatabase(shared, database));
  return startEmulator(database);
}

/**
 * Replaces the database in a mongodb:// or mongodb+srv:// URI. When the URI has credentials and no
 * authSource, the original database stays the authSource, since the driver would otherwise
 * authenticate against the new (empty) database.
 */
export function withDatabase(uri: string, database: string): string {
  const match = /^(mongodb(?:\+srv)?:\/\/)([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(uri);
  if (match === null) throw new Error('MONGODB_URI is not a mongodb:// or mongodb+srv:// URI.');
  const [, scheme, authority = '', originalDatabase = '', query = ''] = match;
  const parameters = query === '' ? [] : query.split('&');
  const hasCredentials = authority.includes('@');
  if (hasCredentials && !parameters.some((parameter) => parameter.toLowerCase().startsWith('authsource='))) {
    parameters.push(`authSource=${originalDatabase === '' ? 'admin' : originalDatabase}`);
  }
  return `${scheme}${authority}/${database}${parameters.length === 0 ? '' : `?${parameters.join('&')}`}`;
}

async function useSharedServer(uri: string): Promise<MongoLane> {
  return {
    uri,
    async stop() {
      const connection = mongoose.createConnection(uri, { autoCreate: false, autoIndex: false, serverSelectionTimeoutMS: 5000 });
      try {
        await connection.asPromise();
        try {
          await connection.dropDatabase();
        } catch (error) {
          // An emulator behind MONGODB_URI (jongodb has neither dropDatabase nor listCollections)
          // keeps the database; its name is unique and the emulator's data dies with it.
          if ((error as { code?: unknown }).code !== COMMAND_NOT_FOUND) throw error;
        }
      } finally {
        await connection.close();
      }
    },
  };
}

function emulatorBinary(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.join(path.dirname(require.resolve(`${EMULATOR_PACKAGE}/package.json`)), 'bin', 'jongodb');
  } catch (error) {
    throw new Error(`MONGODB_URI is not set and ${EMULATOR_PACKAGE} is not installed: set MONGODB_URI to a MongoDB server for the tests.`, {
      cause: error,
    });
  }
}

/**
 * Always a private emulator, even when MONGODB_URI names a shared server: an outage test must not
 * stop a server other tests (or people) use.
 */
export async function startPausableEmulator(): Promise<PausableMongoLane> {
  return startEmulator(`tessera_test_${randomBytes(6).toString('hex')}`);
}

async function startEmulator(database: string): Promise<PausableMongoLane> {
  // --port=0 lets the kernel pick a free port and the emulator prints the one it got, so there is
  // no window in which another process could take a port we probed.
  const child = spawn(emulatorBinary(), ['--host=127.0.0.1', '--port=0', `--database=${database}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });

  let output = '';
  const uri = await new Promise<string>((resolve, reject) => {
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${message}\nEmulator output:\n${output.slice(-2000) || '(none)'}`));
    };
    const timer = setTimeout(() => fail(`jongodb printed no JONGODB_URI within ${START_TIMEOUT_MS / 1000} s.`), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      if (settled) return;
      output += chunk.toString('utf8');
      const found = /^JONGODB_URI=(mongodb:\/\/\S+)$/m.exec(output);
      if (found !== null) {
        settled = true;
        clearTimeout(timer);
        resolve(found[1]!);
      }
    };
    // Keep draining both pipes for the emulator's whole life, or it blocks once a pipe buffer fills.
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (error) => fail(`jongodb could not be started: ${error.message}`));
    child.once('exit', (code, signal) => fail(`jongodb exited before it was ready (code ${String(code)}, signal ${String(signal)}).`));
  });

  return {
    uri,
    async pause() {
      child.kill('SIGSTOP');
      const until = Date.now() + STOP_TIMEOUT_MS;
      while (!allThreadsStopped(child.pid!)) {
        if (Date.now() > until) throw new Error(`jongodb (pid ${child.pid}) did not stop within ${STOP_TIMEOUT_MS} ms of SIGSTOP.`);
        await delay(2);
      }
    },
    resume() {
      child.kill('SIGCONT');
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // A frozen process would not act on SIGTERM.
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Whether every thread of a process is stopped (state T in /proc); true where /proc is not there to ask. */
function allThreadsStopped(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return threads.every((thread) => {
    try {
      // The state follows the command name in parentheses, which may itself contain spaces.
      const stat = readFileSync(`/proc/${pid}/task/${thread}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    } catch {
      return true;
    }
  });
}
