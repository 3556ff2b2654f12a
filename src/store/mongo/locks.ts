/** Leases in the `locks` collection, `_id` the lock's name. */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import { Schema, type Connection, type Model } from 'mongoose';

import { storeUnavailableError } from '../store-errors.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import { schemaOptions } from './schema-options.ts';

/** A rotation takes milliseconds; the lease only bounds how long a crashed holder blocks the others. */
const LOCK_LEASE_MS = 10_000;
const LOCK_WAIT_MS = 15_000;

/**
 * Leases that serialise work across processes (key rotation). A transaction alone is not enough:
 * a standalone mongod has none, and two snapshot-isolated rotations that both see "no current key"
 * only collide if the server detects their write conflict, which not every server does.
 */
export interface LockDocument {
  _id: string;
  owner: string;
  until: Date;
}

const lockSchema = new Schema<LockDocument>(
  {
    _id: { type: String, required: true },
    owner: { type: String, required: true },
    until: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'locks' },
);

export function lockModel(connection: Connection): Model<LockDocument> {
  return connection.model<LockDocument>('Lock', lockSchema);
}

/** Runs `work` holding the named lease; waits (bounded by LOCK_WAIT_MS) while another process holds it. */
export function leases(Lock: Model<LockDocument>) {
  return async function withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
    const owner = randomUUID();
    // Local time, not the injected clock: the lease is about live processes, and a few seconds of
    // skew between hosts only shortens or lengthens how long a crashed holder blocks the others.
    const giveUpAt = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const now = Date.now();
      try {
        // Matches only a free (expired) lease; a held one makes the upsert insert a duplicate _id.
        await Lock.updateOne({ _id: name, until: { $lte: new Date(now) } }, { $set: { owner, until: new Date(now + LOCK_LEASE_MS) } }, { upsert: true });
        break;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        if (Date.now() >= giveUpAt) throw storeUnavailableError(`Timed out waiting for the ${name} lock.`, error);
        await delay(10 + Math.random() * 40);
      }
    }
    try {
      return await work();
    } finally {
      // If this fails the lease simply runs out.
      await Lock.deleteOne({ _id: name, owner }).catch(() => undefined);
    }
  };
}
