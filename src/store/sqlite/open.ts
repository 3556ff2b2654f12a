/**
 * The embedded store: one SQLite file through node:sqlite. Opening it sets the pragmas and file
 * permissions, runs the migrations and composes the repositories (one module each, statements
 * prepared once here at open); multi-row writes run in BEGIN IMMEDIATE transactions so the CLI and
 * a running server can share the file without lost updates.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

import type { Store } from '../port.ts';
import { guardStore } from '../outage.ts';
import { storeUnavailableError } from '../store-errors.ts';
import { sqliteAccounts } from './accounts.ts';
import { sqliteAudit } from './audit.ts';
import { sqliteClients } from './clients.ts';
import { PURGE_BATCH, sqliteDatabase } from './database.ts';
import { sqliteExpiringRecords } from './expiring-records.ts';
import { createPrivateFile, ensurePrivateDirectory, restrictFiles } from './file-modes.ts';
import { groupCommit } from './group-commit.ts';
import { sqliteIdentities } from './identities.ts';
import { sqliteKeys } from './keys.ts';
import { migrate } from './migrations.ts';
import { prepareRateLimitStatements, SqliteRateLimiter } from './rate-limits.ts';
import { sqliteResources } from './resources.ts';
import { sqliteRevisions } from './revisions.ts';
import { isSqliteDamaged, isSqliteUnavailable } from './sqlite-errors.ts';
import { sqliteUpstreams } from './upstreams.ts';
import { walSync, type WalSync } from './wal-sync.ts';

export { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from './migrations.ts';

export interface SqliteStoreOptions {
  file: string;
  /** How often expired oidc records, rate limit counters and audit events are deleted; reads ignore them either way. Default 60. */
  purgeIntervalSeconds?: number;
  /** Epoch milliseconds. Tests inject a clock to observe expiry without sleeping. */
  clock?: () => number;
  /** Told what an operator should fix but that does not stop the store (a DATA_DIR open to others). */
  warn?: (message: string) => void;
}

/** Long enough for a CLI write to finish while the server holds the lock, short enough to surface a stuck writer. */
const BUSY_TIMEOUT_MS = 5000;

export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const clock = options.clock ?? Date.now;
  const purgeIntervalMs = Math.max(1, Math.round((options.purgeIntervalSeconds ?? 60) * 1000));

  if (options.file !== ':memory:') {
    const warning = ensurePrivateDirectory(path.dirname(path.resolve(options.file)));
    if (warning !== undefined) options.warn?.(warning);
    createPrivateFile(options.file);
  }

  let db: DatabaseSync;
  try {
    db = new DatabaseSync(options.file, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw storeUnavailableError(`Cannot open the SQLite database ${options.file}.`, error);
  }

  let repositories: ReturnType<typeof composeRepositories>;
  try {
    configure(db);
    if (options.file !== ':memory:') restrictFiles([options.file, `${options.file}-wal`, `${options.file}-shm`]);
    migrate(db, options.file);
    // Every statement is prepared here, once: a damaged file is reported at open, not on a request.
    repositories = composeRepositories(db, clock, options.file === ':memory:' ? undefined : walSync(`${options.file}-wal`));
  } catch (error) {
    db.close();
    if (isSqliteDamaged(error)) throw storeUnavailableError(damagedMessage(options.file, error), error);
    throw error;
  }
  const { expiring, audit, commits, wal, rateLimitStatements, ping } = repositories;

  let closed = false;
  let purging = false;

  function purgeExpired(): void {
    if (closed || purging) return;
    purging = true;
    const purgeBatch = (): void => {
      if (closed) {
        purging = false;
        return;
      }
      let removed: number;
      try {
        removed = Math.max(
          expiring.purge(clock(), PURGE_BATCH),
          // Wall-clock time, as the limiter counts (see rate-limits.ts).
          Number(rateLimitStatements.purge.run({ now: Date.now(), limit: PURGE_BATCH }).changes),
          audit.purge(clock(), PURGE_BATCH),
        );
      } catch {
        // Housekeeping only (reads already ignore expired rows): a busy database just waits for the next round.
        purging = false;
        return;
      }
      // A full batch means there is probably more; yield to the event loop between batches.
      if (removed === PURGE_BATCH) setImmediate(purgeBatch).unref();
      else purging = false;
    };
    purgeBatch();
  }

  const purgeTimer = setInterval(purgeExpired, purgeIntervalMs);
  purgeTimer.unref();

  // Busy, full or closed: 503 with Retry-After rather than a 500 (store/outage.ts).
  return guardStore({
    kind: 'sqlite',
    oidc: expiring.records,
    accounts: repositories.accounts,
    clients: repositories.clients,
    resources: repositories.resources,
    upstreams: repositories.upstreams,
    identities: repositories.identities,
    keys: repositories.keys,
    revisions: repositories.revisions.repository,
    audit: audit.repository,
    rateLimiter(limiterOptions) {
      return new SqliteRateLimiter(rateLimitStatements, commits, limiterOptions);
    },
    async ping() {
      try {
        ping.get();
      } catch (error) {
        throw storeUnavailableError('The SQLite database is not usable.', error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(purgeTimer);
      // Writes still queued for this turn's group commit are committed (and acknowledged) first.
      commits.flush();
      try {
        // Recommended by SQLite for long-lived connections: refreshes planner statistics cheaply.
        db.exec('PRAGMA optimize');
      } catch {
        // Only an optimisation; closing matters more.
      }
      db.close();
      // The last group's writes are acknowledged once their WAL sync is done.
      await wal?.close();
    },
  }, {
    isUnavailable: isSqliteUnavailable,
    // Damage found after open (pages no query at open touched) still names the file.
    describe: (error) => (isSqliteDamaged(error) ? damagedMessage(options.file, error) : undefined),
  });
}

function composeRepositories(db: DatabaseSync, clock: () => number, wal: WalSync | undefined) {
  const database = sqliteDatabase(db, clock);
  const commits = groupCommit(db, wal);
  const revisions = sqliteRevisions(database);
  return {
    commits,
    wal,
    expiring: sqliteExpiringRecords(database, commits),
    accounts: sqliteAccounts(database, commits),
    clients: sqliteClients(database, revisions),
    resources: sqliteResources(database, revisions),
    upstreams: sqliteUpstreams(database, revisions),
    identities: sqliteIdentities(database),
    keys: sqliteKeys(database, revisions),
    revisions,
    audit: sqliteAudit(database, commits),
    rateLimitStatements: prepareRateLimitStatements(db),
    ping: db.prepare('SELECT 1'),
  };
}

function configure(db: DatabaseSync): void {
  // Also set by the constructor's `timeout`; repeated so the intent is visible next to the others.
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string } | undefined;
  // An in-memory database reports "memory" and cannot use WAL; a file must.
  if (mode?.journal_mode !== 'wal' && mode?.journal_mode !== 'memory') {
    throw storeUnavailableError(`SQLite refused WAL mode (journal_mode is ${String(mode?.journal_mode)}).`);
  }
  // FULL syncs the WAL on every commit: an acknowledged write survives power loss, not only a
  // process crash (NORMAL in WAL mode may lose the last commits on power loss).
  db.exec('PRAGMA synchronous = FULL');
  // The commit that takes the WAL past this many pages copies them into the database file and
  // syncs both, on the event loop: with SQLite's default of 1,000 pages that was a checkpoint every
  // 70 or so group commits under refresh traffic, and most of the writes' cost (one-row commits here:
  // 410 µs each with 1,000, 270 with 10,000, 115 with none). Hot pages (the table's last page, the
  // index tails) are copied once per checkpoint however often they were written, so fewer, larger
  // checkpoints copy less. The WAL may grow to about 40 MB between them; after one it is cut back
  // to 64 MB at most.
  db.exec('PRAGMA wal_autocheckpoint = 10000');
  db.exec('PRAGMA journal_size_limit = 67108864');
}

/** What an operator can act on, in one line: which file, and what to do. */
function damagedMessage(file: string, error: unknown): string {
  return `The SQLite database ${path.resolve(file)} is damaged (${error instanceof Error ? error.message : String(error)}); stop Tessera and restore it from a backup.`;
}
