/**
 * Which SQLite failures mean "the database cannot be used right now": another process held the
 * write lock past the busy timeout (several workers or instances on one file), the disk is full or
 * failing, or the store was already closed (a request finishing during shutdown). A request meeting
 * one gets 503 with Retry-After (store/outage.ts); anything else (a constraint, a bug) stays as it is.
 */

/** Primary result codes (https://sqlite.org/rescode.html); node:sqlite reports extended ones in `errcode`. */
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_NOMEM = 7;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
const DAMAGED_CODES = new Set([SQLITE_CORRUPT, SQLITE_NOTADB]);
// A database found damaged while serving is unusable too: 503, and the log has the cause.
const UNAVAILABLE_CODES = new Set([SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, ...DAMAGED_CODES]);

/** The file is not (or no longer) a sound SQLite database: random bytes, overwritten pages, truncated. */
export function isSqliteDamaged(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errcode } = error as { code?: unknown; errcode?: unknown };
  return code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number' && DAMAGED_CODES.has(errcode & 0xff);
}

export function isSqliteUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errcode, message } = error as { code?: unknown; errcode?: unknown; message?: unknown };
  if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number') return UNAVAILABLE_CODES.has(errcode & 0xff);
  // node:sqlite on a closed database.
  return code === 'ERR_INVALID_STATE' && typeof message === 'string' && /database is not open|statement has been finalized/i.test(message);
}

/** A UNIQUE or PRIMARY KEY constraint on `column` (as `table.column`) refused the write. */
export function isUniqueViolation(error: unknown, column: string): boolean {
  if (!(error instanceof Error)) return false;
  const errcode = (error as Error & { errcode?: unknown }).errcode;
  return (errcode === 2067 || errcode === 1555) && error.message.includes(column);
}
