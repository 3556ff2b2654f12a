/**
 * The SQLite file holds accounts, password hashes and (digests of) every token: only the user
 * Tessera runs as may read it. New directories are made 0700 and the files 0600 (SQLite gives the
 * -wal and -shm files the database file's mode); a DATA_DIR that already exists is left as the
 * operator made it (it may be a mounted volume), but a wider one is reported at startup.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

const OWNER_ONLY_DIRECTORY = 0o700;
const OWNER_ONLY_FILE = 0o600;

/** Creates the directory owner-only if missing; returns a warning when an existing one is open to others. */
export function ensurePrivateDirectory(directory: string): string | undefined {
  if (!existsSync(directory)) {
    mkdirSync(directory, { recursive: true, mode: OWNER_ONLY_DIRECTORY });
    return undefined;
  }
  const mode = statSync(directory).mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  return `DATA_DIR ${directory} is accessible to other users (mode ${mode.toString(8).padStart(4, '0')}); make it owner-only: chmod 700 ${directory}`;
}

/** Creates the database file owner-only before SQLite does (it would use the umask), so its -wal and -shm follow. */
export function createPrivateFile(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', OWNER_ONLY_FILE));
}

/** Narrows the files that exist (from an older Tessera, or copied in) to owner-only. */
export function restrictFiles(files: readonly string[]): void {
  for (const file of files) {
    if (existsSync(file) && (statSync(file).mode & 0o077) !== 0) chmodSync(file, OWNER_ONLY_FILE);
  }
}
