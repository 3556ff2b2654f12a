/**
 * `node bench/import.ts`: how long `tessera users import` takes for IMPORT_BENCH_RECORDS (default
 * 100,000) accounts with bcrypt hashes, into a fresh SQLite DATA_DIR, run as an operator runs it
 * (bin/tessera in a child process, --json). The budget is under a minute on the project's 2-core
 * machine; nothing is hashed at import, so the time is reading, checking and writing.
 *
 * The file reuses a few bcrypt hashes made once here (bcryptjs, cost 10): making 100,000 real ones
 * would take hours and measure nothing the import does. Then it runs the import a second time, the
 * re-run that must skip every record. Exits non-zero when the first run is over budget.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import bcrypt from 'bcryptjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RECORDS = Number(process.env.IMPORT_BENCH_RECORDS ?? 100_000);
const BUDGET_SECONDS = 60;

function run(env: Record<string, string>, args: string[]): Promise<{ seconds: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/tessera'), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ seconds: (performance.now() - started) / 1000, stdout }) : reject(new Error(`tessera ${args.join(' ')} exited ${code}`))));
  });
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tessera-import-bench-'));
try {
  mkdirSync(path.join(dataDir, 'config'));
  // NODE_ENV=test: production would want TESSERA_SECRET and an https ISSUER, which an import does not use.
  const env = { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, CONFIG_DIR: path.join(dataDir, 'config') };
  const hashes = ['one', 'two', 'three', 'four'].map((word) => bcrypt.hashSync(`bench password ${word}`, 10));
  const lines: string[] = [];
  for (let index = 0; index < RECORDS; index += 1) {
    lines.push(JSON.stringify({
      email: `person-${index}@example.com`, name: `Person ${index}`, given_name: 'Person', family_name: String(index), email_verified: index % 2 === 0,
      roles: index % 10 === 0 ? ['staff'] : [], created_at: new Date(1_500_000_000_000 + index * 60_000).toISOString(), external_id: `legacy-${index}`,
      password_hash: hashes[index % hashes.length],
    }));
  }
  const file = path.join(dataDir, 'users.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  console.log(`${RECORDS} records, ${(statSync(file).size / 1024 / 1024).toFixed(1)} MB of JSON Lines`);

  // Creates the schema and the keys first, so the timed run is the import alone.
  await run(env, ['users', 'list', '--json']);
  const first = await run(env, ['users', 'import', file, '--json']);
  const report = JSON.parse(first.stdout) as { imported: number; errors: unknown[] };
  console.log(`import: ${first.seconds.toFixed(1)} s for ${report.imported} accounts (${Math.round(report.imported / first.seconds)}/s), ${report.errors.length} errors`);
  const second = await run(env, ['users', 'import', file, '--json']);
  const rerun = JSON.parse(second.stdout) as { imported: number; skipped: number };
  console.log(`re-run: ${second.seconds.toFixed(1)} s, ${rerun.imported} imported, ${rerun.skipped} skipped`);
  const pass = first.seconds < BUDGET_SECONDS && report.imported === RECORDS;
  console.log(`budget: ${RECORDS} records in under ${BUDGET_SECONDS} s: ${pass ? 'pass' : 'FAIL'}`);
  process.exitCode = pass ? 0 : 1;
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
