/** Clients in the `clients` collection, `_id` the client_id. Every write bumps the `clients` revision. */
import { Schema, type Connection, type Model } from 'mongoose';

import type { ClientRepository, StoredClient } from '../port.ts';
import { clientIdTakenError } from '../store-errors.ts';
import type { MongoDatabase } from './database.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import type { MongoRevisions } from './revisions.ts';
import { schemaOptions } from './schema-options.ts';

export interface ClientDocument {
  /** The client_id. */
  _id: string;
  metadata: Record<string, unknown>;
  createdAt: Date;
}

const clientSchema = new Schema<ClientDocument>(
  {
    _id: { type: String, required: true },
    metadata: { type: Schema.Types.Mixed, required: true },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'clients' },
);
clientSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export function clientModel(connection: Connection): Model<ClientDocument> {
  return connection.model<ClientDocument>('Client', clientSchema);
}

function toClient(doc: ClientDocument): StoredClient {
  return { clientId: doc._id, metadata: doc.metadata, createdAt: doc.createdAt };
}

export function mongoClients(database: MongoDatabase, Client: Model<ClientDocument>, revisions: MongoRevisions): ClientRepository {
  const { clock, atomically } = database;
  const bumpRevision = revisions.bump;

  return {
    async create(client) {
      const doc: ClientDocument = { _id: String(client.clientId), metadata: client.metadata, createdAt: new Date(clock()) };
      try {
        await atomically(async (session) => {
          await Client.insertMany([doc], { session });
          await bumpRevision('clients', session);
        });
      } catch (error) {
        if (isDuplicateKey(error)) throw clientIdTakenError(doc._id, error);
        throw error;
      }
      // A copy, so a caller changing its object later cannot change what this call reported.
      return toClient({ ...doc, metadata: structuredClone(doc.metadata) });
    },
    async find(clientId) {
      const doc = await Client.findOne({ _id: String(clientId) }).lean().exec();
      return doc === null ? undefined : toClient(doc);
    },
    async update(clientId, metadata) {
      let found = false;
      await atomically(async (session) => {
        const result = await Client.updateOne({ _id: String(clientId) }, { $set: { metadata } }, { session }).exec();
        found = result.matchedCount > 0;
        if (found) await bumpRevision('clients', session);
      });
      return found;
    },
    async list() {
      return (await Client.find({}).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toClient);
    },
    async delete(clientId) {
      let found = false;
      await atomically(async (session) => {
        const result = await Client.deleteOne({ _id: String(clientId) }, { session }).exec();
        found = result.deletedCount > 0;
        if (found) await bumpRevision('clients', session);
      });
      return found;
    },
  };
}
