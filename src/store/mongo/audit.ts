/** The audit trail in the `audit_events` collection, `_id` the event id. */
import { Schema, type Connection, type Model } from 'mongoose';

import type { AuditRecord, AuditRepository } from '../port.ts';
import type { MongoDatabase } from './database.ts';
import { schemaOptions } from './schema-options.ts';

/** One security event of the audit trail (see domain/audit.ts). */
export interface AuditEventDocument {
  /** The event's id. */
  _id: string;
  type: string;
  at: Date;
  sub?: string;
  clientId?: string;
  ip?: string;
  requestId?: string;
  details?: Record<string, unknown>;
  expiresAt: Date;
}

const auditEventSchema = new Schema<AuditEventDocument>(
  {
    _id: { type: String, required: true },
    type: { type: String, required: true },
    at: { type: Date, required: true },
    sub: { type: String },
    clientId: { type: String },
    ip: { type: String },
    requestId: { type: String },
    details: { type: Schema.Types.Mixed },
    expiresAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'audit_events' },
);
// Newest first, by account, by client, by type, or all: each read has the index that fits it.
auditEventSchema.index({ at: -1, _id: -1 }, { name: 'at_id' });
auditEventSchema.index({ sub: 1, at: -1, _id: -1 }, { name: 'sub_at_id', partialFilterExpression: { sub: { $exists: true } } });
auditEventSchema.index({ clientId: 1, at: -1, _id: -1 }, { name: 'clientId_at_id', partialFilterExpression: { clientId: { $exists: true } } });
auditEventSchema.index({ type: 1, at: -1, _id: -1 }, { name: 'type_at_id' });
// The retention period: housekeeping only, reads filter on expiresAt too.
auditEventSchema.index({ expiresAt: 1 }, { name: 'expiresAt_ttl', expireAfterSeconds: 0 });

export function auditEventModel(connection: Connection): Model<AuditEventDocument> {
  return connection.model<AuditEventDocument>('AuditEvent', auditEventSchema);
}

function toAuditDocument(record: AuditRecord): AuditEventDocument {
  const doc: AuditEventDocument = { _id: String(record.id), type: String(record.type), at: record.at, expiresAt: record.expiresAt };
  if (record.sub !== undefined) doc.sub = String(record.sub);
  if (record.clientId !== undefined) doc.clientId = String(record.clientId);
  if (record.ip !== undefined) doc.ip = String(record.ip);
  if (record.requestId !== undefined) doc.requestId = String(record.requestId);
  if (record.details !== undefined) doc.details = record.details;
  return doc;
}

function toAuditRecord(doc: AuditEventDocument): AuditRecord {
  const record: AuditRecord = { id: doc._id, type: doc.type, at: doc.at, expiresAt: doc.expiresAt };
  if (doc.sub != null) record.sub = doc.sub;
  if (doc.clientId != null) record.clientId = doc.clientId;
  if (doc.ip != null) record.ip = doc.ip;
  if (doc.requestId != null) record.requestId = doc.requestId;
  if (doc.details != null) record.details = doc.details;
  return record;
}

export function mongoAudit(database: MongoDatabase, AuditEvent: Model<AuditEventDocument>): AuditRepository {
  const { clock } = database;

  return {
    async append(records) {
      if (records.length === 0) return;
      // Upserts that only ever insert: a batch retried after a partial failure (or a lost answer)
      // leaves one copy of each event. Unordered: one refused event must not keep the others out.
      await AuditEvent.bulkWrite(records.map((record) => {
        const { _id, ...fields } = toAuditDocument(record);
        return { updateOne: { filter: { _id }, update: { $setOnInsert: fields }, upsert: true } };
      }), { ordered: false });
    },
    async query(query) {
      const filter: Record<string, unknown> = { expiresAt: { $gt: new Date(clock()) } };
      if (query.sub !== undefined) filter.sub = String(query.sub);
      if (query.clientId !== undefined) filter.clientId = String(query.clientId);
      if (query.types !== undefined) filter.type = { $in: query.types.map(String) };
      const at: Record<string, Date> = {};
      if (query.since !== undefined) at.$gte = query.since;
      if (query.until !== undefined) at.$lt = query.until;
      if (Object.keys(at).length) filter.at = at;
      if (query.before !== undefined) {
        filter.$or = [{ at: { $lt: query.before.at } }, { at: query.before.at, _id: { $lt: String(query.before.id) } }];
      }
      const limit = Math.max(0, Math.floor(query.limit));
      // MongoDB reads limit(0) as "no limit"; the port means none.
      if (limit === 0) return [];
      const docs = await AuditEvent.find(filter).sort({ at: -1, _id: -1 }).limit(limit).lean().exec();
      return docs.map(toAuditRecord);
    },
  };
}
