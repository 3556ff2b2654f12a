/** Resource servers in the `resources` collection, `_id` the audience. Every write bumps the `resources` revision. */
import { Schema, type Connection, type Model } from 'mongoose';

import type { AccessTokenSigningAlg, ResourceRepository, ResourceServerRecord } from '../port.ts';
import { resourceAudienceTakenError } from '../store-errors.ts';
import type { MongoDatabase } from './database.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import type { MongoRevisions } from './revisions.ts';
import { schemaOptions } from './schema-options.ts';

export interface ResourceDocument {
  /** The audience (resource indicator), compared exactly as stored. */
  _id: string;
  name?: string;
  scopes: string[];
  format: 'jwt' | 'opaque';
  ttlSeconds: number;
  /** Scopes limited to roles, as pairs: a scope token may hold `.` and `$`, which field names must not. */
  scopeRoles?: Array<{ scope: string; roles: string[] }>;
  /** The clients it accepts in the code flow (absent: any, by consent). */
  clients?: string[];
  /** Absent: RS256. */
  signingAlg?: string;
  createdAt: Date;
}

const resourceSchema = new Schema<ResourceDocument>(
  {
    _id: { type: String, required: true },
    name: { type: String },
    scopes: { type: [String], required: true },
    format: { type: String, required: true, enum: ['jwt', 'opaque'] },
    ttlSeconds: { type: Number, required: true },
    scopeRoles: { type: [{ _id: false, scope: { type: String, required: true }, roles: { type: [String], required: true } }], default: undefined },
    clients: { type: [String], default: undefined },
    signingAlg: { type: String },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'resources' },
);
resourceSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export function resourceModel(connection: Connection): Model<ResourceDocument> {
  return connection.model<ResourceDocument>('Resource', resourceSchema);
}

function toResource(doc: ResourceDocument): ResourceServerRecord {
  const resource: ResourceServerRecord = {
    audience: doc._id,
    scopes: [...doc.scopes],
    format: doc.format,
    ttlSeconds: doc.ttlSeconds,
    createdAt: doc.createdAt,
  };
  if (doc.name != null) resource.name = doc.name;
  if (doc.scopeRoles?.length) resource.scopeRoles = Object.fromEntries(doc.scopeRoles.map(({ scope, roles }) => [scope, [...roles]]));
  if (doc.clients?.length) resource.clients = [...doc.clients];
  if (doc.signingAlg != null) resource.signingAlg = doc.signingAlg as AccessTokenSigningAlg;
  return resource;
}

export function mongoResources(database: MongoDatabase, Resource: Model<ResourceDocument>, revisions: MongoRevisions): ResourceRepository {
  const { clock, atomically } = database;
  const bumpRevision = revisions.bump;

  return {
    async create(resource) {
      const doc: ResourceDocument = {
        _id: String(resource.audience),
        // A copy, so a caller changing its array later cannot change what this call reported.
        scopes: resource.scopes.map(String),
        format: resource.format,
        ttlSeconds: resource.ttlSeconds,
        createdAt: new Date(clock()),
      };
      if (resource.name !== undefined) doc.name = String(resource.name);
      if (resource.scopeRoles && Object.keys(resource.scopeRoles).length) {
        doc.scopeRoles = Object.entries(resource.scopeRoles).map(([scope, roles]) => ({ scope: String(scope), roles: roles.map(String) }));
      }
      if (resource.clients?.length) doc.clients = resource.clients.map(String);
      if (resource.signingAlg !== undefined) doc.signingAlg = String(resource.signingAlg);
      try {
        await atomically(async (session) => {
          await Resource.insertMany([doc], { session });
          await bumpRevision('resources', session);
        });
      } catch (error) {
        if (isDuplicateKey(error)) throw resourceAudienceTakenError(doc._id, error);
        throw error;
      }
      return toResource(doc);
    },
    async find(audience) {
      const doc = await Resource.findOne({ _id: String(audience) }).lean().exec();
      return doc === null ? undefined : toResource(doc);
    },
    async list() {
      return (await Resource.find({}).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toResource);
    },
    async delete(audience) {
      let found = false;
      await atomically(async (session) => {
        const result = await Resource.deleteOne({ _id: String(audience) }, { session }).exec();
        found = result.deletedCount > 0;
        if (found) await bumpRevision('resources', session);
      });
      return found;
    },
  };
}
