/**
 * Runs the real `bin/tessera` in a child process, as an operator would, against a test server's
 * store (its `cliEnv`).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadConfig } from '../../src/config.ts';
import { buildServices, type Services } from '../../src/services.ts';
import { openStore } from '../../src/store/open-store.ts';
import { makeTempDir, removeDir } from './server.ts';

const BIN = fileURLToPath(new URL('../../bin/tessera', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/tessera with only the given environment (plus PATH), so nothing from the test run leaks in; `input` goes to its stdin. */
export function runCli(env: Record<string, string>, args: string[], input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

/** The domain services on the store the environment names, as the server and the CLI would see them. */
export async function withServices<T>(env: Record<string, string>, fn: (services: Services) => Promise<T>): Promise<T> {
  const config = loadConfig(env);
  const store = await openStore(config);
  try {
    return await fn(buildServices(config, store));
  } finally {
    await store.close();
  }
}

/** Runs a command that must succeed with --json and returns what it printed. */
export async function runCliJson<T>(env: Record<string, string>, args: string[]): Promise<T> {
  const result = await runCli(env, [...args, '--json']);
  if (result.code !== 0) throw new Error(`tessera ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** A fresh, empty Tessera installation (removed at the test's end), and the CLI run against it. */
export function cliInstallation(t: { teardown(fn: () => void): void }, prefix = 'tessera-cli-') {
  const dataDir = makeTempDir(prefix);
  const configDir = path.join(dataDir, 'config');
  mkdirSync(configDir);
  t.teardown(() => removeDir(dataDir));
  const env: Record<string, string> = { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, CONFIG_DIR: configDir };
  return {
    env,
    dataDir,
    /** `options.env` replaces the installation's environment (for a running server's `cliEnv`). */
    cli: (args: string[], options: { input?: string; env?: Record<string, string> } = {}) => runCli(options.env ?? env, args, options.input),
    json: <T>(args: string[]) => runCliJson<T>(env, args),
    /** Writes a file into the installation's directory and returns its path. */
    file(name: string, content: string): string {
      const file = path.join(dataDir, name);
      writeFileSync(file, content);
      return file;
    },
    /** The domain services on the same store, as the server would see them. */
    withServices: <T>(fn: (services: Services) => Promise<T>) => withServices(env, fn),
  };
}

/** Exactly one line on stderr, and nothing that looks like a stack trace. */
export function singleErrorLine(result: CliResult): string {
  const lines = result.stderr.split('\n').filter(Boolean);
  if (lines.length !== 1 || /^\s+at /m.test(result.stderr)) throw new Error(`expected one line on stderr, got: ${JSON.stringify(result.stderr)}`);
  return lines[0] ?? '';
}

/** Polls until `probe` gives a value or the time is up (then undefined). */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 8_000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
