/**
 * Upstream identity providers in MongoDB: one document each, the id as `_id`. The settings are
 * kept as the domain validated them (domain/upstreams.ts).
 */
import { Schema, type Connection, type Model } from 'mongoose';

import type { StoredUpstream, UpstreamRepository } from '../port.ts';
import { upstreamIdTakenError } from '../store-errors.ts';
import type { MongoDatabase } from './database.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import type { MongoRevisions } from './revisions.ts';
import { schemaOptions } from './schema-options.ts';

export interface UpstreamDocument {
  _id: string;
  settings: Record<string, unknown>;
  encryptedClientSecret: string;
  createdAt: Date;
}

const upstreamSchema = new Schema<UpstreamDocument>(
  {
    _id: { type: String, required: true },
    settings: { type: Schema.Types.Mixed, required: true },
    encryptedClientSecret: { type: String, required: true },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'upstreams' },
);
upstreamSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export function upstreamModel(connection: Connection): Model<UpstreamDocument> {
  return connection.model<UpstreamDocument>('Upstream', upstreamSchema);
}

/** Every write (create, delete) bumps the `upstreams` revision. */
export function mongoUpstreams(database: MongoDatabase, Upstream: Model<UpstreamDocument>, revisions: MongoRevisions): UpstreamRepository {
  const { atomically, clock } = database;
  const bumpRevision = revisions.bump;
  return {
    async create(upstream) {
      const doc: UpstreamDocument = {
        _id: String(upstream.id),
        settings: structuredClone(upstream.settings),
        encryptedClientSecret: String(upstream.encryptedClientSecret),
        createdAt: new Date(clock()),
      };
      try {
        await atomically(async (session) => {
          await Upstream.insertMany([doc], { session });
          await bumpRevision('upstreams', session);
        });
      } catch (error) {
        if (isDuplicateKey(error)) throw upstreamIdTakenError(doc._id, error);
        throw error;
      }
      return toUpstream(structuredClone(doc));
    },
    async find(id) {
      const doc = await Upstream.findOne({ _id: String(id) }).lean().exec();
      return doc === null ? undefined : toUpstream(doc);
    },
    async list() {
      return (await Upstream.find({}).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toUpstream);
    },
    async delete(id) {
      let found = false;
      await atomically(async (session) => {
        const result = await Upstream.deleteOne({ _id: String(id) }, { session }).exec();
        found = result.deletedCount > 0;
        if (found) await bumpRevision('upstreams', session);
      });
      return found;
    },
  };
}

function toUpstream(doc: UpstreamDocument): StoredUpstream {
  return { id: doc._id, settings: doc.settings, encryptedClientSecret: doc.encryptedClientSecret, createdAt: doc.createdAt };
}
