/**
 * Identities at upstream providers in MongoDB. `_id` is `<upstream id>:<subject>` (upstream ids
 * are slugs without ':'), so one upstream identity belongs to at most one account at no index cost.
 */
import { Schema, type Connection, type Model } from 'mongoose';

import type { FederatedIdentity, IdentityRepository } from '../port.ts';
import { identityTakenError } from '../store-errors.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import { schemaOptions } from './schema-options.ts';

export interface IdentityDocument {
  _id: string;
  upstreamId: string;
  subject: string;
  accountSub: string;
  email?: string;
  createdAt: Date;
}

const identitySchema = new Schema<IdentityDocument>(
  {
    _id: { type: String, required: true },
    upstreamId: { type: String, required: true },
    subject: { type: String, required: true },
    accountSub: { type: String, required: true },
    email: { type: String },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'identities' },
);
identitySchema.index({ accountSub: 1, createdAt: 1 }, { name: 'accountSub_createdAt' });

const identityId = (upstreamId: string, subject: string) => `${String(upstreamId)}:${String(subject)}`;

export function identityModel(connection: Connection): Model<IdentityDocument> {
  return connection.model<IdentityDocument>('Identity', identitySchema);
}

export function mongoIdentities(Identity: Model<IdentityDocument>): IdentityRepository {
  return {
    async create(identity) {
      const doc: IdentityDocument = {
        _id: identityId(identity.upstreamId, identity.subject),
        upstreamId: String(identity.upstreamId),
        subject: String(identity.subject),
        accountSub: String(identity.accountSub),
        createdAt: new Date(identity.createdAt),
      };
      if (identity.email !== undefined) doc.email = String(identity.email);
      try {
        await Identity.insertMany([doc]);
      } catch (error) {
        if (isDuplicateKey(error)) throw identityTakenError(error);
        throw error;
      }
      return toIdentity(doc);
    },
    async find(upstreamId, subject) {
      const doc = await Identity.findOne({ _id: identityId(upstreamId, subject) }).lean().exec();
      return doc === null ? undefined : toIdentity(doc);
    },
    async listByAccount(accountSub) {
      return (await Identity.find({ accountSub: String(accountSub) }).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toIdentity);
    },
    async delete(upstreamId, subject, accountSub) {
      const result = await Identity.deleteOne({ _id: identityId(upstreamId, subject), accountSub: String(accountSub) }).exec();
      return result.deletedCount > 0;
    },
  };
}

function toIdentity(doc: IdentityDocument): FederatedIdentity {
  const identity: FederatedIdentity = { upstreamId: doc.upstreamId, subject: doc.subject, accountSub: doc.accountSub, createdAt: doc.createdAt };
  if (doc.email != null) identity.email = doc.email;
  return identity;
}
