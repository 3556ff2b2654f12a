/**
 * What commands print. With --json, stdout carries exactly one JSON document and nothing else, so
 * scripts can pipe it; notes for people go to stderr or appear only in the human form.
 */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(...lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A note for the person at the terminal; never on stdout, so it cannot corrupt piped output. */
export function warn(message: string): void {
  process.stderr.write(`tessera: warning: ${message}\n`);
}

/** Left-aligned columns with a header row; the last column is not padded. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  printLines(...all.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd()));
}
