/** The audit trail in the `audit_events` table: newest-first reads by account, client or type each have their index. */
import type { StatementSync } from 'node:sqlite';

import type { AuditRecord, AuditRepository } from '../port.ts';
import { optionalString, type SqliteDatabase } from './database.ts';
import type { GroupCommit } from './group-commit.ts';

interface AuditRow {
  id: string;
  type: string;
  at: number;
  sub: string | null;
  client_id: string | null;
  ip: string | null;
  request_id: string | null;
  /** JSON object, or NULL. */
  details: string | null;
  expires_at: number;
}

const AUDIT_COLUMNS = 'id, type, at, sub, client_id, ip, request_id, details, expires_at';

function toAuditRecord(row: AuditRow): AuditRecord {
  const record: AuditRecord = { id: row.id, type: row.type, at: new Date(row.at), expiresAt: new Date(row.expires_at) };
  if (row.sub !== null) record.sub = row.sub;
  if (row.client_id !== null) record.clientId = row.client_id;
  if (row.ip !== null) record.ip = row.ip;
  if (row.request_id !== null) record.requestId = row.request_id;
  if (row.details !== null) record.details = JSON.parse(row.details) as Record<string, unknown>;
  return record;
}

export interface SqliteAudit {
  readonly repository: AuditRepository;
  /** Deletes up to `limit` events past their retention; answers how many. */
  purge(now: number, limit: number): number;
}

/** `commits`: a batch of events is one write of the group commit (all or none of it), sharing the turn's fsync. */
export function sqliteAudit(database: SqliteDatabase, commits: GroupCommit): SqliteAudit {
  const { db, clock } = database;
  const prepare = (sql: string): StatementSync => database.db.prepare(sql);
  const statements = {
    insertAuditEvent: prepare(`
      INSERT INTO audit_events (${AUDIT_COLUMNS})
      VALUES (:id, :type, :at, :sub, :client_id, :ip, :request_id, :details, :expires_at)
      ON CONFLICT (id) DO NOTHING`),
    purgeAuditEvents: prepare('DELETE FROM audit_events WHERE rowid IN (SELECT rowid FROM audit_events WHERE expires_at <= :now LIMIT :limit)'),
  };

  // Each combination of filters gets its own statement (prepared once), so every query can use the
  // index that fits it; `IS NULL OR` conditions in one shared statement would defeat the indexes.
  const auditQueries = new Map<string, StatementSync>();
  const repository: AuditRepository = {
    async append(records) {
      if (records.length === 0) return;
      await commits.write(() => {
        for (const record of records) {
          statements.insertAuditEvent.run({
            id: String(record.id),
            type: String(record.type),
            at: record.at.getTime(),
            sub: optionalString(record.sub),
            client_id: optionalString(record.clientId),
            ip: optionalString(record.ip),
            request_id: optionalString(record.requestId),
            details: record.details === undefined ? null : JSON.stringify(record.details),
            expires_at: record.expiresAt.getTime(),
          });
        }
      }, records.length > 1 ? 'several' : 'one');
    },
    async query(query) {
      const conditions = ['expires_at > :now'];
      const parameters: Record<string, string | number> = { now: clock(), limit: Math.max(0, Math.floor(query.limit)) };
      if (query.sub !== undefined) {
        conditions.push('sub = :sub');
        parameters.sub = String(query.sub);
      }
      if (query.clientId !== undefined) {
        conditions.push('client_id = :client_id');
        parameters.client_id = String(query.clientId);
      }
      if (query.types !== undefined) {
        conditions.push('type IN (SELECT value FROM json_each(:types))');
        parameters.types = JSON.stringify(query.types.map(String));
      }
      if (query.since !== undefined) {
        conditions.push('at >= :since');
        parameters.since = query.since.getTime();
      }
      if (query.until !== undefined) {
        conditions.push('at < :until');
        parameters.until = query.until.getTime();
      }
      if (query.before !== undefined) {
        conditions.push('(at < :before_at OR (at = :before_at AND id < :before_id))');
        parameters.before_at = query.before.at.getTime();
        parameters.before_id = String(query.before.id);
      }
      const sql = `SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE ${conditions.join(' AND ')} ORDER BY at DESC, id DESC LIMIT :limit`;
      let statement = auditQueries.get(sql);
      if (!statement) {
        statement = db.prepare(sql);
        auditQueries.set(sql, statement);
      }
      return (statement.all(parameters) as unknown as AuditRow[]).map(toAuditRecord);
    },
  };

  return {
    repository,
    purge: (now, limit) => Number(statements.purgeAuditEvents.run({ now, limit }).changes),
  };
}
