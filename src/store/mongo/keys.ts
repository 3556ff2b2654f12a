/** Signing and cookie keys in the `keys` collection, `_id` the kid. Rotations hold the `keys.rotate` lease and bump the `keys` revision. */
import { Schema, type Connection, type Model } from 'mongoose';

import type { KeyRepository, KeyUse, StoredKey } from '../port.ts';
import type { MongoDatabase } from './database.ts';
import type { leases } from './locks.ts';
import type { MongoRevisions } from './revisions.ts';
import { schemaOptions } from './schema-options.ts';

export interface KeyDocument {
  /** The kid. */
  _id: string;
  use: string;
  alg: string;
  publicJwk?: Record<string, unknown>;
  encryptedPrivate: string;
  createdAt: Date;
  retiredAt?: Date;
  expiresAt?: Date;
}

const keySchema = new Schema<KeyDocument>(
  {
    _id: { type: String, required: true },
    use: { type: String, required: true },
    alg: { type: String, default: '' },
    publicJwk: { type: Schema.Types.Mixed },
    encryptedPrivate: { type: String, required: true },
    createdAt: { type: Date, required: true },
    retiredAt: { type: Date },
    expiresAt: { type: Date },
  },
  { ...schemaOptions, collection: 'keys' },
);
keySchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export function keyModel(connection: Connection): Model<KeyDocument> {
  return connection.model<KeyDocument>('Key', keySchema);
}

function toKeyDocument(key: StoredKey): KeyDocument {
  const doc: KeyDocument = {
    _id: String(key.kid),
    use: key.use,
    alg: key.alg,
    encryptedPrivate: key.encryptedPrivate,
    createdAt: key.createdAt,
  };
  if (key.publicJwk !== undefined) doc.publicJwk = key.publicJwk;
  if (key.retiredAt !== undefined) doc.retiredAt = key.retiredAt;
  if (key.expiresAt !== undefined) doc.expiresAt = key.expiresAt;
  return doc;
}

function toKey(doc: KeyDocument): StoredKey {
  const key: StoredKey = {
    kid: doc._id,
    use: doc.use as KeyUse,
    alg: doc.alg,
    encryptedPrivate: doc.encryptedPrivate,
    createdAt: doc.createdAt,
  };
  if (doc.publicJwk != null) key.publicJwk = doc.publicJwk;
  if (doc.retiredAt != null) key.retiredAt = doc.retiredAt;
  if (doc.expiresAt != null) key.expiresAt = doc.expiresAt;
  return key;
}

export function mongoKeys(database: MongoDatabase, Key: Model<KeyDocument>, revisions: MongoRevisions, withLock: ReturnType<typeof leases>): KeyRepository {
  const { live, atomically } = database;
  const bumpRevision = revisions.bump;

  return {
    async list() {
      return (await Key.find(live()).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toKey);
    },
    async rotate(add, retire) {
      const uses = [...new Set(add.map((key) => key.use))];
      const kids = add.map((key) => String(key.kid));
      const docs = add.map(toKeyDocument);
      // The lock serialises rotations across processes; the transaction (where there is one)
      // makes each all-or-nothing. Without one, inserting first means a crash midway leaves an
      // extra current key, which the next rotation retires, rather than no current key at all.
      await withLock('keys.rotate', () =>
        atomically(async (session) => {
          if (docs.length > 0) await Key.insertMany(docs, { session, ordered: true });
          await Key.updateMany(
            { use: { $in: uses }, retiredAt: { $exists: false }, _id: { $nin: kids } },
            { $set: { retiredAt: retire.retiredAt, expiresAt: retire.expiresAt } },
            { session },
          ).exec();
          await bumpRevision('keys', session);
        }),
      );
    },
  };
}
