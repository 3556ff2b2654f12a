/**
 * What every MongoDB repository shares: the store's own connection (no global mongoose state), its
 * clock, and whether writes of several documents run in transactions (collections and indexes are
 * made at open, in open.ts; schema-options.ts keeps mongoose from creating anything on its own).
 */
import { setTimeout as delay } from 'node:timers/promises';

import type { ClientSession, Connection } from 'mongoose';

import { errorCode } from './mongo-errors.ts';

/** MongoServerError code for WriteConflict: a concurrent transaction wrote the same document first. */
const WRITE_CONFLICT = 112;
/** Reruns after an unlabelled write conflict; each rerun sees the winner's write, so few are needed. */
const CONFLICT_RERUNS = 5;
/** Compare-and-set rounds on one field; n concurrent writers need at most n (the rate limiters keep n small). */
export const COMPARE_AND_SET_ATTEMPTS = 50;


export interface MongoDatabase {
  readonly connection: Connection;
  /** Epoch milliseconds (injected by tests to observe expiry without sleeping). */
  readonly clock: () => number;
  /** Filter for "not expired": documents without expiresAt never expire. */
  live(): { expiresAt: { $not: { $lte: Date } } };
  /**
   * Runs `work` in a transaction when the deployment has them, otherwise as the ordered writes it
   * contains. `work` may run more than once (the driver retries transient transaction errors).
   */
  atomically(work: (session: ClientSession | undefined) => Promise<void>): Promise<void>;
}

export function mongoDatabase(connection: Connection, settings: { clock: () => number; transactions: boolean }): MongoDatabase {
  const { clock, transactions } = settings;
  return {
    connection,
    clock,
    live: () => ({ expiresAt: { $not: { $lte: new Date(clock()) } } }),
    async atomically(work) {
      if (!transactions) return work(undefined);
      for (let attempt = 1; ; attempt += 1) {
        const session = await connection.startSession();
        try {
          await session.withTransaction(() => work(session));
          return;
        } catch (error) {
          // mongod labels write conflicts TransientTransactionError and withTransaction reruns them;
          // some servers (emulators) fail the commit unlabelled instead. The transaction was aborted,
          // so rerunning is safe, and lets e.g. a create see the winner's document as a duplicate key.
          if (errorCode(error) !== WRITE_CONFLICT || attempt >= CONFLICT_RERUNS) throw error;
        } finally {
          await session.endSession();
        }
        await delay(attempt * (5 + Math.random() * 20));
      }
    },
  };
}
