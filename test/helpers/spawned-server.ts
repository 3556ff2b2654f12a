/**
 * The real `bin/tessera serve` in a child process, as an operator runs it: for what only a whole
 * process shows (workers, SIGTERM, SIGKILL). Its JSON log lines are parsed as they come, so a test
 * can wait for one ("worker ready") and read the port, pids and messages from them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { CHEAP_ARGON2, RELAXED_RATE_LIMITS } from './server.ts';

const BIN = fileURLToPath(new URL('../../bin/tessera', import.meta.url));
const READY_TIMEOUT_MS = 30_000;

export interface LogLine {
  [field: string]: unknown;
  msg?: string;
  pid?: number;
  worker?: number;
}

export interface SpawnedServer {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every JSON log line so far (stdout), in order. */
  readonly lines: LogLine[];
  /** What the process wrote that was not a JSON log line (stderr, mostly). */
  readonly output: () => string;
  /** Resolves with the first line (seen before or after) matching, or rejects after the timeout. */
  waitForLine(matches: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  dataDir: string;
  /** Static clients written to DATA_DIR/config/clients.json. */
  clients?: Record<string, unknown>[];
  env?: Record<string, string>;
}

/** Environment a test's `tessera serve` runs with: the given DATA_DIR, info logs, relaxed rate limits, cheap argon2, one process. */
export function serverEnv({ dataDir, clients = [], env = {} }: SpawnOptions): Record<string, string> {
  const configDir = path.join(dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(path.join(configDir, 'clients.json'), JSON.stringify(clients));
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    PORT: '0',
    DATA_DIR: dataDir,
    CONFIG_DIR: configDir,
    LOG_LEVEL: 'info',
    STORE_POLL_SECONDS: '1',
    WORKERS: '1',
    ...RELAXED_RATE_LIMITS,
    ...CHEAP_ARGON2,
    ...env,
  };
}

export function spawnServer(options: SpawnOptions): SpawnedServer {
  const child = spawn(process.execPath, [BIN, 'serve'], { env: serverEnv(options), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const waiters = new Set<{ matches: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();
  let other = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        other += `${text}\n`;
        continue;
      }
      lines.push(line);
      for (const waiter of waiters) {
        if (waiter.matches(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (other += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    pid: child.pid!,
    lines,
    output: () => other,
    exited,
    waitForLine(matches, what, timeoutMs = READY_TIMEOUT_MS) {
      const seen = lines.find(matches);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const waiter = { matches, resolve: (line: LogLine) => { clearTimeout(timer); resolve(line); } };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no log line "${what}" within ${timeoutMs / 1000} s; output:\n${other.slice(-3000)}\n${lines.slice(-20).map((line) => JSON.stringify(line)).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`the server exited (${signal ?? code}) before logging "${what}"; output:\n${other.slice(-3000)}`));
        });
      });
    },
  };
}

/** Waits for "Tessera is listening" and returns its base URL. */
export async function listeningUrl(server: SpawnedServer): Promise<string> {
  const line = await server.waitForLine((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('Tessera is listening'), 'Tessera is listening');
  return `http://localhost:${String(line.port)}`;
}

/** Waits until `count` workers have said they are ready (cluster mode) and returns those lines. */
export async function workersReady(server: SpawnedServer, count: number): Promise<LogLine[]> {
  const ready = (line: LogLine) => line.msg === 'worker ready';
  await server.waitForLine((line) => ready(line) && server.lines.filter(ready).length >= count, `${count} workers ready`);
  return server.lines.filter(ready);
}

/** Ends the process if a test left it running (SIGKILL: whatever it was doing no longer matters). */
export function killIfRunning(server: SpawnedServer): void {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
}
