/**
 * Identities at upstream providers, linked to accounts, in SQLite. The primary key is
 * (upstream_id, subject): one upstream identity belongs to at most one account.
 */
import type { FederatedIdentity, IdentityRepository } from '../port.ts';
import { identityTakenError } from '../store-errors.ts';
import type { SqliteDatabase } from './database.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

interface IdentityRow {
  upstream_id: string;
  subject: string;
  account_sub: string;
  email: string | null;
  created_at: number;
}

const COLUMNS = 'upstream_id, subject, account_sub, email, created_at';

export function sqliteIdentities(database: SqliteDatabase): IdentityRepository {
  const { db } = database;
  const insert = db.prepare(`INSERT INTO identities (${COLUMNS}) VALUES (:upstream_id, :subject, :account_sub, :email, :created_at)`);
  const findOne = db.prepare(`SELECT ${COLUMNS} FROM identities WHERE upstream_id = :upstream_id AND subject = :subject`);
  const listByAccount = db.prepare(`SELECT ${COLUMNS} FROM identities WHERE account_sub = :account_sub ORDER BY created_at, upstream_id, subject`);
  const deleteOne = db.prepare('DELETE FROM identities WHERE upstream_id = :upstream_id AND subject = :subject AND account_sub = :account_sub');

  return {
    async create(identity) {
      const row: IdentityRow = {
        upstream_id: String(identity.upstreamId),
        subject: String(identity.subject),
        account_sub: String(identity.accountSub),
        email: identity.email === undefined ? null : String(identity.email),
        created_at: identity.createdAt.getTime(),
      };
      try {
        insert.run({ ...row });
      } catch (error) {
        if (isUniqueViolation(error, 'identities.upstream_id')) throw identityTakenError(error);
        throw error;
      }
      return toIdentity(row);
    },
    async find(upstreamId, subject) {
      const row = findOne.get({ upstream_id: String(upstreamId), subject: String(subject) }) as IdentityRow | undefined;
      return row === undefined ? undefined : toIdentity(row);
    },
    async listByAccount(accountSub) {
      return (listByAccount.all({ account_sub: String(accountSub) }) as unknown as IdentityRow[]).map(toIdentity);
    },
    async delete(upstreamId, subject, accountSub) {
      return Number(deleteOne.run({ upstream_id: String(upstreamId), subject: String(subject), account_sub: String(accountSub) }).changes) > 0;
    },
  };
}

function toIdentity(row: IdentityRow): FederatedIdentity {
  const identity: FederatedIdentity = { upstreamId: row.upstream_id, subject: row.subject, accountSub: row.account_sub, createdAt: new Date(row.created_at) };
  if (row.email !== null) identity.email = row.email;
  return identity;
}
