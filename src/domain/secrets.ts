/**
 * The master secret encrypts private keys at rest. Operators give it as TESSERA_SECRET; in
 * development, when none is given, one is generated into DATA_DIR (and the log says so loudly).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

import type { Config } from '../config.ts';

export interface MasterSecret {
  readonly value: string;
  /** Where a generated secret lives; undefined when it came from configuration. */
  readonly generatedFile: string | undefined;
}

export function loadMasterSecret(config: Pick<Config, 'secret' | 'dataDir' | 'env'>): MasterSecret {
  if (config.secret) return { value: config.secret, generatedFile: undefined };
  if (config.env === 'production') {
    // loadConfig already refuses this; the check stays here so no caller can skip it.
    throw new Error('TESSERA_SECRET is required in production');
  }
  const file = path.join(config.dataDir, 'secret');
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    // 'wx' fails if another process (the CLI, a second server) created it first; then we read theirs.
    try {
      writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  // One written by an older Tessera, or copied in, may be readable by others: it decrypts every private key.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return { value: readFileSync(file, 'utf8').trim(), generatedFile: file };
}
