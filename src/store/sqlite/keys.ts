/** Signing and cookie keys in the `keys` table, private parts encrypted. Every rotation bumps the `keys` revision. */
import type { StatementSync } from 'node:sqlite';

import type { KeyRepository, KeyUse, StoredKey } from '../port.ts';
import { LIVE, type SqliteDatabase } from './database.ts';
import type { SqliteRevisions } from './revisions.ts';

interface KeyRow {
  kid: string;
  use: string;
  alg: string;
  public_jwk: string | null;
  encrypted_private: string;
  created_at: number;
  retired_at: number | null;
  expires_at: number | null;
}

const KEY_COLUMNS = 'kid, use, alg, public_jwk, encrypted_private, created_at, retired_at, expires_at';

function toKey(row: KeyRow): StoredKey {
  const key: StoredKey = {
    kid: row.kid,
    use: row.use as KeyUse,
    alg: row.alg,
    encryptedPrivate: row.encrypted_private,
    createdAt: new Date(row.created_at),
  };
  if (row.public_jwk !== null) key.publicJwk = JSON.parse(row.public_jwk) as Record<string, unknown>;
  if (row.retired_at !== null) key.retiredAt = new Date(row.retired_at);
  if (row.expires_at !== null) key.expiresAt = new Date(row.expires_at);
  return key;
}

export function sqliteKeys(database: SqliteDatabase, revisions: SqliteRevisions): KeyRepository {
  const { clock, transaction } = database;
  const bumpRevision = revisions.bump;
  const prepare = (sql: string): StatementSync => database.db.prepare(sql);
  const statements = {
    // rowid breaks ties between keys created in the same millisecond by insertion order.
    listKeys: prepare(`SELECT ${KEY_COLUMNS} FROM keys WHERE ${LIVE} ORDER BY created_at, rowid`),
    retireKeys: prepare('UPDATE keys SET retired_at = :retired_at, expires_at = :expires_at WHERE use = :use AND retired_at IS NULL'),
    insertKey: prepare(`
      INSERT INTO keys (${KEY_COLUMNS})
      VALUES (:kid, :use, :alg, :public_jwk, :encrypted_private, :created_at, :retired_at, :expires_at)`),
  };

  return {
    async list() {
      return (statements.listKeys.all({ now: clock() }) as unknown as KeyRow[]).map(toKey);
    },
    async rotate(add, retire) {
      const uses = [...new Set(add.map((key) => key.use))];
      transaction(() => {
        // Retire before inserting, so the keys being added are never among the retired.
        for (const use of uses) {
          statements.retireKeys.run({ use, retired_at: retire.retiredAt.getTime(), expires_at: retire.expiresAt.getTime() });
        }
        for (const key of add) {
          statements.insertKey.run({
            kid: String(key.kid),
            use: key.use,
            alg: key.alg,
            public_jwk: key.publicJwk === undefined ? null : JSON.stringify(key.publicJwk),
            encrypted_private: key.encryptedPrivate,
            created_at: key.createdAt.getTime(),
            retired_at: key.retiredAt?.getTime() ?? null,
            expires_at: key.expiresAt?.getTime() ?? null,
          });
        }
        bumpRevision('keys');
      });
    },
  };
}
