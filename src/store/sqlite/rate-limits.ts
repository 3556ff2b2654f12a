/**
 * A rate-limiter-flexible limiter counting in the store's SQLite file through node:sqlite, so every
 * process on the file shares the limits. rate-limiter-flexible's own RateLimiterSQLite only drives
 * sqlite3, better-sqlite3 and knex; this one implements the same four store hooks on node:sqlite.
 *
 * Each hook is one statement, so counting is atomic across connections without a transaction.
 * Time is the wall clock (not the store's injected clock), as in RateLimiterMongo: limits are about
 * live traffic, and both backends must behave alike.
 */
import { createRequire } from 'node:module';
import type { DatabaseSync, StatementSync } from 'node:sqlite';

import { RateLimiterRes, type RateLimiterStoreAbstract as RateLimiterStoreAbstractType } from 'rate-limiter-flexible';

import type { RateLimiterOptions } from '../port.ts';
import type { GroupCommit } from './group-commit.ts';

// The package declares RateLimiterStoreAbstract in its types but does not export it from its index.
const require = createRequire(import.meta.url);
const RateLimiterStoreAbstract = require('rate-limiter-flexible/lib/RateLimiterStoreAbstract.js') as typeof RateLimiterStoreAbstractType;

/** Table `rate_limits` (created by the store's migrations): one row per prefixed key. */
export interface RateLimitStatements {
  increment: StatementSync;
  set: StatementSync;
  get: StatementSync;
  delete: StatementSync;
  purge: StatementSync;
}

interface RateLimitRow {
  points: number;
  /** Epoch milliseconds; null for a counter that never expires (duration 0). */
  expire: number | null;
}

export function prepareRateLimitStatements(db: DatabaseSync): RateLimitStatements {
  return {
    // A live counter is incremented; an expired one (not yet purged) starts over with a new window.
    // SET expressions all read the row as it was, so both CASEs agree on whether it had expired.
    increment: db.prepare(`
      INSERT INTO rate_limits (key, points, expire) VALUES (:key, :points, :expire)
      ON CONFLICT (key) DO UPDATE SET
        points = CASE WHEN rate_limits.expire IS NULL OR rate_limits.expire > :now THEN rate_limits.points + excluded.points ELSE excluded.points END,
        expire = CASE WHEN rate_limits.expire IS NULL OR rate_limits.expire > :now THEN rate_limits.expire ELSE excluded.expire END
      RETURNING points, expire`),
    // set() and block(): points and expiry as given, whatever was there.
    set: db.prepare(`
      INSERT INTO rate_limits (key, points, expire) VALUES (:key, :points, :expire)
      ON CONFLICT (key) DO UPDATE SET points = excluded.points, expire = excluded.expire
      RETURNING points, expire`),
    get: db.prepare('SELECT points, expire FROM rate_limits WHERE key = :key AND (expire IS NULL OR expire > :now)'),
    delete: db.prepare('DELETE FROM rate_limits WHERE key = :key'),
    purge: db.prepare('DELETE FROM rate_limits WHERE rowid IN (SELECT rowid FROM rate_limits WHERE expire <= :now LIMIT :limit)'),
  };
}

/**
 * The hooks below are the ones rate-limiter-flexible's store limiters implement (see its
 * RateLimiterSQLite): consume, penalty, reward, block, set, get and delete all go through them.
 */
export class SqliteRateLimiter extends RateLimiterStoreAbstract {
  readonly #statements: RateLimitStatements;
  readonly #commits: GroupCommit;

  /** `commits`: counting shares the group commit with the other writes of its turn (one fsync for all). */
  constructor(statements: RateLimitStatements, commits: GroupCommit, options: RateLimiterOptions) {
    super({
      storeClient: statements,
      keyPrefix: options.keyPrefix,
      points: options.points,
      duration: options.duration,
      ...(options.blockDuration === undefined ? {} : { blockDuration: options.blockDuration }),
    });
    this.#statements = statements;
    this.#commits = commits;
  }

  async _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false): Promise<RateLimitRow> {
    const now = Date.now();
    const params = { key: rlKey, points, expire: msDuration > 0 ? now + msDuration : null };
    const row = await this.#commits.write(() => (forceExpire ? this.#statements.set.get(params) : this.#statements.increment.get({ ...params, now })));
    if (row === undefined) throw new Error('SQLite did not return the rate limit counter.');
    return row as unknown as RateLimitRow;
  }

  async _get(rlKey: string): Promise<RateLimitRow | null> {
    return (this.#statements.get.get({ key: rlKey, now: Date.now() }) as RateLimitRow | undefined) ?? null;
  }

  async _delete(rlKey: string): Promise<boolean> {
    return this.#commits.write(() => Number(this.#statements.delete.run({ key: rlKey }).changes) > 0);
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, row: RateLimitRow): RateLimiterRes {
    const consumedPoints = row.points;
    return new RateLimiterRes(
      Math.max(this.points - consumedPoints, 0),
      row.expire === null ? -1 : Math.max(row.expire - Date.now(), 0),
      consumedPoints,
      consumedPoints === changedPoints,
    );
  }
}
