/**
 * Runs `tessera` commands against a test server's store (its `cliEnv`) or a fresh installation.
 * `runCli` runs the command in this process through the CLI's own entry point (`runCommand`), with
 * its own environment and streams: the same parsing, configuration, store and exit code as
 * bin/tessera, without a Node start per command (about a second each on a busy machine).
 * `spawnCli` runs the real bin/tessera in a child process, for what only a process shows: the bin
 * script itself, exit statuses, signals, `serve`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { runCommand } from '../../src/cli.ts';
import { loadConfig } from '../../src/config.ts';
import { buildServices, type Services } from '../../src/services.ts';
import { openStore } from '../../src/store/open-store.ts';
import { CHEAP_ARGON2, makeTempDir, removeDir } from './server.ts';

// The polling helper lives in eventually.ts; re-exported for the tests that import it from here.
export { eventually } from './eventually.ts';

const BIN = fileURLToPath(new URL('../../bin/tessera', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in this process with only the given environment, so nothing from the test run leaks in; `input` is its stdin. */
export async function runCli(env: Record<string, string>, args: string[], input?: string): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCommand(args, {
    env,
    stdin: Readable.from(input ? [Buffer.from(input)] : []),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, signal: null, stdout, stderr };
}

/** Runs bin/tessera with only the given environment (plus PATH), so nothing from the test run leaks in; `input` goes to its stdin. */
export function spawnCli(env: Record<string, string>, args: string[], input?: string): Promise<CliResult> {
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
  const env: Record<string, string> = { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, CONFIG_DIR: configDir, ...CHEAP_ARGON2 };
  return {
    env,
    dataDir,
    /** `options.env` replaces the installation's environment (for a running server's `cliEnv`). */
    cli: (args: string[], options: { input?: string; env?: Record<string, string> } = {}) => runCli(options.env ?? env, args, options.input),
    /** The same, through a real bin/tessera process. */
    spawnCli: (args: string[], options: { input?: string; env?: Record<string, string> } = {}) => spawnCli(options.env ?? env, args, options.input),
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
