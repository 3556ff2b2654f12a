/**
 * Revision counters in the `revisions` collection, `_id` the name. They are seeded at open, so a
 * bump inside a transaction never races to insert one.
 */
import { Schema, type ClientSession, type Connection, type Model } from 'mongoose';

import type { RevisionName, RevisionRepository } from '../port.ts';
import { storeUnavailableError } from '../store-errors.ts';
import { COMPARE_AND_SET_ATTEMPTS } from './database.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import { schemaOptions } from './schema-options.ts';

const REVISION_NAMES: readonly RevisionName[] = ['clients', 'keys', 'resources', 'upstreams'];

export interface RevisionDocument {
  /** The revision name. */
  _id: string;
  value: number;
}

const revisionSchema = new Schema<RevisionDocument>(
  {
    _id: { type: String, required: true },
    value: { type: Number, required: true },
  },
  { ...schemaOptions, collection: 'revisions' },
);

export function revisionModel(connection: Connection): Model<RevisionDocument> {
  return connection.model<RevisionDocument>('Revision', revisionSchema);
}

/**
 * Creates the revision counters up front, so bumps inside transactions never race to insert them
 * (an upsert that loses such a race fails with a duplicate key instead of retrying).
 */
export async function seedRevisions(Revision: Model<RevisionDocument>): Promise<void> {
  for (const name of REVISION_NAMES) {
    try {
      await Revision.updateOne({ _id: name }, { $setOnInsert: { value: 0 } }, { upsert: true }).exec();
    } catch (error) {
      // Another process seeded it at the same moment: the counter exists, which is all we need.
      if (!isDuplicateKey(error)) throw error;
    }
  }
}

export interface MongoRevisions {
  readonly repository: RevisionRepository;
  /** One $inc, inside the caller's transaction when it has one (clients, resources, keys). */
  bump(name: RevisionName, session?: ClientSession): Promise<number>;
}

export function mongoRevisions(Revision: Model<RevisionDocument>): MongoRevisions {
  async function bumpRevision(name: RevisionName, session?: ClientSession): Promise<number> {
    const doc = await Revision.findOneAndUpdate({ _id: name }, { $inc: { value: 1 } }, { upsert: true, returnDocument: 'after', session })
      .lean()
      .exec();
    if (doc === null) throw storeUnavailableError('MongoDB did not return the new revision.');
    return doc.value;
  }

  const repository: RevisionRepository = {
    async get(name) {
      const doc = await Revision.findOne({ _id: String(name) }).lean().exec();
      return doc?.value ?? 0;
    },
    async bump(name) {
      // Compare-and-set, not bumpRevision's $inc: the caller gets this bump's value, and some
      // servers (the emulator the tests run on) read findAndModify's result apart from the update,
      // so two concurrent $inc callers may see one value. Writes that bump inside their own
      // transaction ignore the value and keep the single $inc.
      for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
        const doc = await Revision.findOne({ _id: String(name) }).lean().exec();
        try {
          if (doc === null) {
            await Revision.insertMany([{ _id: String(name), value: 1 }]);
            return 1;
          }
          const result = await Revision.updateOne({ _id: String(name), value: doc.value }, { $set: { value: doc.value + 1 } }).exec();
          if (result.modifiedCount > 0) return doc.value + 1;
        } catch (error) {
          // Another process created the counter first: read it again.
          if (!isDuplicateKey(error)) throw error;
        }
      }
      throw storeUnavailableError(`The ${String(name)} revision kept changing under concurrent bumps.`);
    },
  };

  return { repository, bump: bumpRevision };
}
