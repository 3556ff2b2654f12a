/**
 * oidc-provider's records (sessions, interactions, codes, tokens, grants...) in the `oidc`
 * collection: each expires, and every read filters on expiresAt, so TTL deletion is housekeeping.
 * The compare-and-set writes are single conditional updates, so they hold across instances.
 */
import mongoose, { Schema, type Connection, type Model } from 'mongoose';

import type { OidcPayload, ExpiringRecordStore } from '../port.ts';
import { storeUnavailableError } from '../store-errors.ts';
import { COMPARE_AND_SET_ATTEMPTS, type MongoDatabase } from './database.ts';
import { schemaOptions } from './schema-options.ts';

/** One document per oidc-provider record of any model; `_id` is `${model}:${id}` (model names never contain ':'). */
export interface OidcRecordDocument {
  _id: string;
  model: string;
  /** The provider's payload as given, plus `consumed` once consumed. */
  payload: Record<string, unknown>;
  /** Copies of the payload's lookup fields, present only when the payload has them (partial indexes). */
  uid?: string;
  userCode?: string;
  grantId?: string;
  /** A rotated refresh token's successor (its id), set by swapSuccessor; replaceOne of a re-save drops it. */
  successor?: string;
  /** Absent for records that never expire; the TTL index ignores such documents. */
  expiresAt?: Date;
}

const oidcRecordSchema = new Schema<OidcRecordDocument>(
  {
    _id: { type: String, required: true },
    model: { type: String, required: true },
    payload: { type: Schema.Types.Mixed, required: true },
    uid: { type: String },
    userCode: { type: String },
    grantId: { type: String },
    successor: { type: String },
    expiresAt: { type: Date },
  },
  { ...schemaOptions, collection: 'oidc' },
);
oidcRecordSchema.index({ model: 1, uid: 1 }, { name: 'model_uid', partialFilterExpression: { uid: { $exists: true } } });
oidcRecordSchema.index({ model: 1, userCode: 1 }, { name: 'model_userCode', partialFilterExpression: { userCode: { $exists: true } } });
oidcRecordSchema.index({ model: 1, grantId: 1 }, { name: 'model_grantId', partialFilterExpression: { grantId: { $exists: true } } });
// On the payload itself rather than a copied field, so records written before this index are found too.
oidcRecordSchema.index(
  { model: 1, 'payload.accountId': 1 },
  { name: 'model_accountId', partialFilterExpression: { 'payload.accountId': { $exists: true } } },
);
// Housekeeping only: the monitor runs about once a minute, so reads filter on expiresAt too.
oidcRecordSchema.index({ expiresAt: 1 }, { name: 'expiresAt_ttl', expireAfterSeconds: 0 });

export function oidcRecordModel(connection: Connection): Model<OidcRecordDocument> {
  return connection.model<OidcRecordDocument>('OidcRecord', oidcRecordSchema);
}

export function mongoExpiringRecords(database: MongoDatabase, OidcRecord: Model<OidcRecordDocument>): ExpiringRecordStore {
  const { connection, clock, live } = database;
  const oidcId = (model: string, id: string) => `${String(model)}:${String(id)}`;

  return {
    async upsert(model, id, payload, expiresInSeconds) {
      const _id = oidcId(model, id);
      const doc: OidcRecordDocument = { _id, model: String(model), payload };
      if (payload.uid != null) doc.uid = String(payload.uid);
      if (payload.userCode != null) doc.userCode = String(payload.userCode);
      if (payload.grantId != null) doc.grantId = String(payload.grantId);
      if (expiresInSeconds !== undefined) doc.expiresAt = new Date(clock() + expiresInSeconds * 1000);
      await OidcRecord.replaceOne({ _id }, doc, { upsert: true }).exec();
    },
    async find(model, id) {
      const doc = await OidcRecord.findOne({ _id: oidcId(model, id), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async findByUid(model, uid) {
      const doc = await OidcRecord.findOne({ model: String(model), uid: String(uid), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async findByUserCode(model, userCode) {
      const doc = await OidcRecord.findOne({ model: String(model), userCode: String(userCode), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async consume(model, id) {
      // One conditional update: of two concurrent consumers, only the first matches and sets the time.
      const result = await OidcRecord.updateOne(
        { _id: oidcId(model, id), 'payload.consumed': { $exists: false }, ...live() },
        { $set: { 'payload.consumed': Math.floor(clock() / 1000) } },
      ).exec();
      return result.modifiedCount === 1;
    },
    async swapSuccessor(model, id, successor) {
      // A conditional update on the value just read, rerun when another caller changed it first, so
      // each caller replaces a different value. (A findAndModify answering the document as it was
      // would do in one step on mongod, but is not atomic on the emulator without transactions.)
      const _id = oidcId(model, id);
      for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
        const doc = await OidcRecord.findOne({ _id }, { successor: 1 }).lean().exec();
        if (doc === null) return undefined;
        const previous = doc.successor;
        const result = await OidcRecord.updateOne(
          { _id, successor: previous ?? { $exists: false } },
          { $set: { successor: String(successor) } },
        ).exec();
        if (result.modifiedCount === 1) return previous;
      }
      throw storeUnavailableError(`Too many concurrent rotations of one ${String(model)}.`);
    },
    async destroy(model, id) {
      await OidcRecord.deleteOne({ _id: oidcId(model, id) }).exec();
    },
    async revokeByGrantId(model, grantId) {
      await OidcRecord.deleteMany({ model: String(model), grantId: String(grantId) }).exec();
    },
    async findByAccountId(model, accountId) {
      const docs = await OidcRecord.find({ model: String(model), 'payload.accountId': String(accountId), ...live() }, { payload: 1 }).lean().exec();
      // `_id` is `${model}:${id}`: what follows the model's prefix is the id, colons and all.
      const prefix = oidcId(model, '');
      return docs.map((doc) => ({ id: doc._id.slice(prefix.length), payload: doc.payload as OidcPayload }));
    },
    async take(model, id) {
      const db = connection.db;
      if (db === undefined) throw storeUnavailableError('The MongoDB connection is not open.');
      // One findAndModify: of two concurrent takers, only one gets the document. Sent as a raw
      // command because the driver's findOneAndDelete always adds `new: false`, which some servers
      // (emulators) refuse next to `remove: true`; so the connection's write concern is added here.
      const command: Record<string, unknown> = {
        findAndModify: OidcRecord.collection.collectionName,
        query: { _id: oidcId(model, id), ...live() },
        remove: true,
        fields: { payload: 1 },
      };
      if (db.writeConcern !== undefined) mongoose.mongo.WriteConcern.apply(command, db.writeConcern);
      const result = await db.command(command);
      const doc = result.value as Pick<OidcRecordDocument, 'payload'> | null | undefined;
      return (doc?.payload ?? undefined) as OidcPayload | undefined;
    },
  };
}
