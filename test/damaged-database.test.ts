/**
 * A damaged tessera.db (issue #10, item 3): random bytes, overwritten pages, a truncated file.
 * `tessera serve` and the CLI stop with one line that names the file and says what to do, exit 1.
 */
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';

import { cliInstallation, singleErrorLine } from './helpers/cli.ts';

const DAMAGE: Record<string, (file: string) => void> = {
  'random bytes': (file) => writeFileSync(file, randomBytes(statSync(file).size)),
  'overwritten pages': (file) => {
    // Page 1 (the header and the schema) stays; every page after it is noise.
    const pageSize = readFileSync(file).readUInt16BE(16);
    const descriptor = openSync(file, 'r+');
    try {
      writeSync(descriptor, randomBytes(statSync(file).size - pageSize), 0, undefined, pageSize);
    } finally {
      closeSync(descriptor);
    }
  },
  truncated: (file) => truncateSync(file, Math.floor(statSync(file).size / 3)),
};

for (const [kind, damage] of Object.entries(DAMAGE)) {
  test(`with ${kind} in tessera.db, serve and the CLI stop with one line naming the file and the remedy`, async (t) => {
    const installation = cliInstallation(t);
    // A real database first: the CLI creates it, with keys and a client in it.
    const created = await installation.cli(['clients', 'create', '--name', 'Damaged', '--redirect-uri', 'https://rp.example/cb', '--json']);
    t.is(created.code, 0, created.stderr);
    const file = path.join(installation.dataDir, 'tessera.db');
    damage(file);

    for (const args of [['serve'], ['clients', 'list']]) {
      const result = await installation.cli(args, { env: { ...installation.env, PORT: '0', WORKERS: '1' } });
      t.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      const line = singleErrorLine(result);
      t.true(line.includes(file), `${args.join(' ')} names the file: ${line}`);
      t.regex(line, /damaged.*restore it from a backup/i, `${args.join(' ')}: ${line}`);
    }
  });
}
