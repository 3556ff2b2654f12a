/**
 * Upstream identity providers in SQLite. The settings are one JSON column: the domain validates
 * them (domain/upstreams.ts), the store only keeps them.
 */
import type { StoredUpstream, UpstreamRepository } from '../port.ts';
import { upstreamIdTakenError } from '../store-errors.ts';
import type { SqliteDatabase } from './database.ts';
import type { SqliteRevisions } from './revisions.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

interface UpstreamRow {
  id: string;
  settings: string;
  encrypted_client_secret: string;
  created_at: number;
}

const COLUMNS = 'id, settings, encrypted_client_secret, created_at';

/** Every write (create, delete) bumps the `upstreams` revision. */
export function sqliteUpstreams(database: SqliteDatabase, revisions: SqliteRevisions): UpstreamRepository {
  const { db, transaction, clock } = database;
  const bumpRevision = revisions.bump;
  const insert = db.prepare(`INSERT INTO upstreams (${COLUMNS}) VALUES (:id, :settings, :encrypted_client_secret, :created_at)`);
  const findOne = db.prepare(`SELECT ${COLUMNS} FROM upstreams WHERE id = :id`);
  const listAll = db.prepare(`SELECT ${COLUMNS} FROM upstreams ORDER BY created_at, id`);
  const deleteOne = db.prepare('DELETE FROM upstreams WHERE id = :id');

  return {
    async create(upstream) {
      const row: UpstreamRow = {
        id: String(upstream.id),
        settings: JSON.stringify(upstream.settings),
        encrypted_client_secret: String(upstream.encryptedClientSecret),
        created_at: clock(),
      };
      try {
        transaction(() => {
          insert.run({ ...row });
          bumpRevision('upstreams');
        });
      } catch (error) {
        if (isUniqueViolation(error, 'upstreams.id')) throw upstreamIdTakenError(row.id, error);
        throw error;
      }
      return toUpstream(row);
    },
    async find(id) {
      const row = findOne.get({ id: String(id) }) as UpstreamRow | undefined;
      return row === undefined ? undefined : toUpstream(row);
    },
    async list() {
      return (listAll.all() as unknown as UpstreamRow[]).map(toUpstream);
    },
    async delete(id) {
      return transaction(() => {
        const found = Number(deleteOne.run({ id: String(id) }).changes) > 0;
        if (found) bumpRevision('upstreams');
        return found;
      });
    },
  };
}

function toUpstream(row: UpstreamRow): StoredUpstream {
  return {
    id: row.id,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    encryptedClientSecret: row.encrypted_client_secret,
    createdAt: new Date(row.created_at),
  };
}
