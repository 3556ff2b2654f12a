/**
 * Upstream identity providers in MongoDB: one document each, the id as `_id`. The settings are
 * kept as the domain validated them (domain/upstreams.ts).
 */
import { Schema, type ClientSession } from 'mongoose';

import type { RevisionName, StoredUpstream, UpstreamRepository } from '../port.ts';
import { upstreamIdTakenError } from '../store-errors.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import type { StoreModels } from './models.ts';
import { schemaOptions } from './schema-options.ts';

export interface UpstreamDocument {
  _id: string;
  settings: Record<string, unknown>;
  encryptedClientSecret: string;
  createdAt: Date;
}

export const upstreamSchema = new Schema<UpstreamDocument>(
  {
    _id: { type: String, required: true },
    settings: { type: Schema.Types.Mixed, required: true },
    encryptedClientSecret: { type: String, required: true },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'upstreams' },
);
upstreamSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

interface Helpers {
  atomically(work: (session: ClientSession | undefined) => Promise<void>): Promise<void>;
  bumpRevision(name: RevisionName, session?: ClientSession): Promise<number>;
  clock(): number;
}

export function mongoUpstreams({ Upstream }: Pick<StoreModels, 'Upstream'>, { atomically, bumpRevision, clock }: Helpers): UpstreamRepository {
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
