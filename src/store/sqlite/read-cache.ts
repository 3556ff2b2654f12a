/**
 * Rows read often and written rarely (a token looked up by every introspection and userinfo call,
 * its grant, the account behind it), kept in memory so a repeated read costs a map lookup instead of
 * a statement. Every read answered from the cache first asks SQLite whether another connection has
 * committed since the last look (`PRAGMA data_version`, one cheap statement that touches no table):
 * the CLI, another WORKERS process or another instance on the same file. If one has, everything
 * cached is dropped, so such a process's writes (a revocation, a disabled account) are seen by the
 * very next read, as without the cache. This connection's own writes do not change data_version;
 * the repositories drop what they write themselves (forget / forgetAll), inside the write, so a read
 * that comes after a write's commit never sees the row from before it.
 *
 * Each read still gets a new object (a copy of what is cached), so a caller that changes what it was
 * given cannot change the cache.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';

import { BoundedMap } from '../../bounded-map.ts';

export interface ReadCache<Row> {
  /** The cached row (null: cached as absent), or undefined when the cache has nothing to say. */
  get(key: string): Row | null | undefined;
  set(key: string, row: Row | null): void;
  /** Drops one key: called by a write of that row, when the write runs. */
  forget(key: string): void;
  /** Drops everything: a write that may touch rows the cache cannot name (by grant, by account). */
  forgetAll(): void;
}

/** What the caches of one connection share: one data_version check per millisecond at most. */
export interface ReadCaches {
  create<Row>(maxEntries: number): ReadCache<Row>;
}

/** How long a check of data_version serves: the longest another connection's commit can go unseen. */
const MAX_STALENESS_MS = 1;

export function readCaches(db: DatabaseSync): ReadCaches {
  const dataVersion: StatementSync = db.prepare('PRAGMA data_version');
  const caches: Array<Map<string, unknown>> = [];
  let version: unknown;
  /** performance.now() of the last data_version check. */
  let checkedAt = -Infinity;

  /** Whether the caches may answer: false (and everything dropped) when another connection has committed since the last check. */
  function current(): boolean {
    const at = performance.now();
    if (at - checkedAt < MAX_STALENESS_MS) return true;
    checkedAt = at;
    const now = (dataVersion.get() as { data_version: number }).data_version;
    if (now === version) return true;
    version = now;
    for (const cache of caches) cache.clear();
    return false;
  }

  return {
    create<Row>(maxEntries: number): ReadCache<Row> {
      const entries = new BoundedMap<string, Row | null>(maxEntries);
      caches.push(entries);
      return {
        get(key) {
          const entry = entries.get(key);
          // A miss is read from the table, which is current anyway: only a hit needs the check.
          if (entry === undefined || !current()) return undefined;
          return entry;
        },
        set(key, row) {
          entries.set(key, row);
        },
        forget(key) {
          entries.delete(key);
        },
        forgetAll() {
          entries.clear();
        },
      };
    },
  };
}
