/**
 * What every SQLite repository shares: the one connection, the store's clock, and a transaction
 * that takes the write lock up front. Each repository prepares its own statements from it at open.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';

import { readCaches, type ReadCache, type ReadCaches } from './read-cache.ts';

export interface SqliteDatabase {
  readonly db: DatabaseSync;
  /** Epoch milliseconds (injected by tests to observe expiry without sleeping). */
  readonly clock: () => number;
  /** Runs `work` in a BEGIN IMMEDIATE transaction: rolled back when it throws. */
  transaction<T>(work: () => T): T;
  /** In-memory caches of rows, dropped when another connection commits (read-cache.ts). */
  readonly caches: ReadCaches;
}

export function sqliteDatabase(db: DatabaseSync, clock: () => number): SqliteDatabase {
  return {
    db,
    clock,
    caches: readCaches(db),
    transaction(work) {
      // IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades can
      // fail with SQLITE_BUSY immediately (busy_timeout does not apply to that deadlock).
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = work();
        db.exec('COMMIT');
        return result;
      } catch (error) {
        if (db.isTransaction) db.exec('ROLLBACK');
        throw error;
      }
    },
  };
}

/** The condition "not expired" on a table with a nullable `expires_at` (NULL never expires). */
export const LIVE = '(expires_at IS NULL OR expires_at > :now)';

/** Rows deleted per purge statement, so one purge never holds the write lock for long. */
export const PURGE_BATCH = 500;

export function optionalString(value: unknown): string | null {
  return value === undefined || value === null ? null : String(value);
}

/**
 * A statement that empties `cache` each time it runs when it writes (INSERT, UPDATE, DELETE): for a
 * repository that caches rows it cannot name from every write's parameters (read-cache.ts).
 */
export function forgettingWrites(statement: StatementSync, cache: ReadCache<unknown>): StatementSync {
  if (!/^\s*(INSERT|UPDATE|DELETE|REPLACE)\b/i.test(statement.sourceSQL)) return statement;
  const forget = <A extends unknown[], R>(call: (...args: A) => R) => (...args: A): R => {
    cache.forgetAll();
    return call(...args);
  };
  // The repositories call run, get and all; everything else is the statement's own.
  return Object.assign(Object.create(statement) as StatementSync, {
    run: forget(statement.run.bind(statement)),
    get: forget(statement.get.bind(statement)),
    all: forget(statement.all.bind(statement)),
  });
}
