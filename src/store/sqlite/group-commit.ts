/**
 * Group commit for oidc-provider's writes, the hot ones (a sign-in makes about sixteen: interactions,
 * sessions, grant, code, tokens; a refresh three). With synchronous=FULL every commit waits for the
 * disk, and DatabaseSync holds the event loop while it does: one commit per write made the disk
 * the limit of sign-ins and refreshes (profiled with bench/run.ts: about 1 ms a write under load,
 * most of a sign-in's event-loop time). Writes issued during one turn of the event loop are queued
 * and run together in one transaction right after it (setImmediate): one fsync for all of them.
 * Each write's promise settles after that COMMIT, so nothing is acknowledged before it is on disk,
 * as before; a write that fails fails alone (a savepoint each). Until its promise settles a write
 * is not visible to reads; oidc-provider awaits every write before it goes on.
 */
import type { DatabaseSync } from 'node:sqlite';

export interface GroupCommit {
  /**
   * Resolves with what `run` returned, once the transaction it ran in has committed. A write of
   * several statements (a read, then a write that depends on it) says so: alone in its turn it
   * still runs in a transaction, so another process cannot write in between.
   */
  write<T = void>(run: () => T, statements?: 'one' | 'several'): Promise<T>;
  /** Commits what is queued now (at close, so queued writes are acknowledged before the file closes). */
  flush(): void;
}

export function groupCommit(db: DatabaseSync): GroupCommit {
  let pendingWrites: Array<{ run(): void; resolve(): void; reject(error: unknown): void; statements: 'one' | 'several' }> = [];

  /**
   * Resolves with what `run` returned, once the transaction it ran in has committed. A write of
   * several statements (a read, then a write that depends on it) says so: alone in its turn it
   * still runs in a transaction, so another process cannot write in between.
   */
  function write<T = void>(run: () => T, statements: 'one' | 'several' = 'one'): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (pendingWrites.length === 0) setImmediate(flushWrites);
      let result: T;
      pendingWrites.push({
        run: () => {
          result = run();
        },
        resolve: () => resolve(result),
        reject,
        statements,
      });
    });
  }

  function flushWrites(): void {
    const writes = pendingWrites;
    pendingWrites = [];
    if (writes.length === 0) return;
    if (writes.length === 1 && writes[0]!.statements === 'one') {
      try {
        writes[0]!.run();
        writes[0]!.resolve();
      } catch (error) {
        writes[0]!.reject(error);
      }
      return;
    }
    const failures = new Map<number, unknown>();
    try {
      db.exec('BEGIN IMMEDIATE');
      writes.forEach((write, index) => {
        db.exec('SAVEPOINT oidc_write');
        try {
          write.run();
          db.exec('RELEASE oidc_write');
        } catch (error) {
          db.exec('ROLLBACK TO oidc_write');
          db.exec('RELEASE oidc_write');
          failures.set(index, error);
        }
      });
      db.exec('COMMIT');
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      for (const write of writes) write.reject(error);
      return;
    }
    writes.forEach((write, index) => (failures.has(index) ? write.reject(failures.get(index)) : write.resolve()));
  }

  return { write, flush: flushWrites };
}
