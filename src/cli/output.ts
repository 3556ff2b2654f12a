/**
 * What commands print. With --json, stdout carries exactly one JSON document and nothing else, so
 * scripts can pipe it; notes for people go to stderr or appear only in the human form.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** Where a command reads and writes: the process's own streams, or those `runCommand` was given. */
export interface CliStreams {
  readonly stdin: AsyncIterable<unknown> & { readonly isTTY?: boolean };
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

// Commands print from deep inside their helpers, and an in-process caller (the tests) may run
// several commands at once, so the streams follow each invocation's async context rather than
// sitting in a module variable that concurrent commands would share.
const current = new AsyncLocalStorage<Partial<CliStreams>>();

/** Runs `work` with the given streams as the command's stdin, stdout and stderr (the process's for any not given). */
export function withStreams<T>(given: Partial<CliStreams>, work: () => Promise<T>): Promise<T> {
  return current.run(given, work);
}

/** The current command's streams. Read lazily: merely touching process.stdin opens a handle on fd 0. */
export function streams(): CliStreams {
  const given = current.getStore();
  if (!given) return process;
  return {
    get stdin() { return given.stdin ?? process.stdin; },
    get stdout() { return given.stdout ?? process.stdout; },
    get stderr() { return given.stderr ?? process.stderr; },
  };
}

export function printJson(value: unknown): void {
  streams().stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(...lines: string[]): void {
  streams().stdout.write(`${lines.join('\n')}\n`);
}

/** A note for the person at the terminal; never on stdout, so it cannot corrupt piped output. */
export function warn(message: string): void {
  streams().stderr.write(`tessera: warning: ${message}\n`);
}

/** Left-aligned columns with a header row; the last column is not padded. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  printLines(...all.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd()));
}
