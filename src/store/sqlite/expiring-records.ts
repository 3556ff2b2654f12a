/**
 * oidc-provider's records (sessions, interactions, codes, tokens, grants...) in one table keyed by
 * (model, id): each expires, and every read ignores what has expired, so purging is housekeeping.
 * Writes go through the group commit; the compare-and-set ones are single statements under the
 * write lock, so they hold across processes sharing the file.
 */
import type { StatementSync } from 'node:sqlite';

import type { OidcPayload, ExpiringRecordStore } from '../port.ts';
import { LIVE, optionalString, type SqliteDatabase } from './database.ts';
import type { GroupCommit } from './group-commit.ts';

interface OidcRow {
  payload: string;
  consumed: number | null;
}

/**
 * The models findByAccountId serves: a person's sessions and grants (the account page, ending
 * sessions) and their emailed links (domain/link-tokens.ts, revoked together). Only their rows carry
 * `account_id`, so only they are in its index: writing every token and code into that index too was
 * about a fifth of a refresh's write cost, measured on this disk.
 */
const FOUND_BY_ACCOUNT: ReadonlySet<string> = new Set(['Session', 'Grant', 'EmailVerification', 'PasswordReset']);

/** Records kept by the read cache (an access token's row is about 1 KB). */
const RECORDS_CACHED = 2048;

/** A record as the read cache keeps it: its payload parsed once (consumed included), and when it expires. */
interface CachedRecord {
  payload: OidcPayload;
  expires_at: number | null;
}

/**
 * A copy of a value parsed from JSON (plain objects, arrays, strings, numbers, booleans, null): what
 * a cached payload is handed out as, a third of what parsing it again cost (measured: about 1.2
 * against 4 µs for an access token and its grant).
 */
function copyOfJson<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(copyOfJson) as T;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = copyOfJson((value as Record<string, unknown>)[key]);
  return copy as T;
}

function toPayload(row: OidcRow | undefined): OidcPayload | undefined {
  if (row === undefined) return undefined;
  const payload = JSON.parse(row.payload) as OidcPayload;
  if (row.consumed !== null) payload.consumed = row.consumed;
  return payload;
}

export interface SqliteExpiringRecords {
  readonly records: ExpiringRecordStore;
  /** Deletes up to `limit` expired records; answers how many. */
  purge(now: number, limit: number): number;
}

export function sqliteExpiringRecords(database: SqliteDatabase, commits: GroupCommit): SqliteExpiringRecords {
  const { clock } = database;
  const groupCommitted = commits.write;
  // (model, id) -> the row, or null for none: a token is looked up by every introspection and
  // userinfo call, its grant too, and introspection tries each token model in turn. A write of a
  // record forgets it when the write runs; revoking a grant's records forgets them all.
  const cached = database.caches.create<CachedRecord>(RECORDS_CACHED);
  const cacheKey = (model: string, id: string) => `${model}\0${id}`;
  const prepare = (sql: string): StatementSync => database.db.prepare(sql);
  const statements = {
    upsertOidc: prepare(`
      INSERT INTO oidc (model, id, payload, uid, user_code, grant_id, account_id, consumed, expires_at)
      VALUES (:model, :id, :payload, :uid, :user_code, :grant_id, :account_id, :consumed, :expires_at)
      ON CONFLICT (model, id) DO UPDATE SET
        payload = excluded.payload, uid = excluded.uid, user_code = excluded.user_code, grant_id = excluded.grant_id,
        account_id = excluded.account_id, consumed = excluded.consumed, expires_at = excluded.expires_at`),
    findOidc: prepare(`SELECT payload, consumed, expires_at FROM oidc WHERE model = :model AND id = :id AND ${LIVE}`),
    findOidcByUid: prepare(`SELECT payload, consumed FROM oidc WHERE model = :model AND uid = :uid AND ${LIVE} LIMIT 1`),
    findOidcByUserCode: prepare(`SELECT payload, consumed FROM oidc WHERE model = :model AND user_code = :user_code AND ${LIVE} LIMIT 1`),
    consumeOidc: prepare(`UPDATE oidc SET consumed = :consumed WHERE model = :model AND id = :id AND consumed IS NULL AND ${LIVE}`),
    findOidcSuccessor: prepare('SELECT successor FROM oidc WHERE model = :model AND id = :id'),
    setOidcSuccessor: prepare('UPDATE oidc SET successor = :successor WHERE model = :model AND id = :id'),
    destroyOidc: prepare('DELETE FROM oidc WHERE model = :model AND id = :id'),
    revokeOidcByGrantId: prepare('DELETE FROM oidc WHERE model = :model AND grant_id = :grant_id'),
    findOidcByAccountId: prepare(`SELECT id, payload, consumed FROM oidc WHERE model = :model AND account_id = :account_id AND ${LIVE}`),
    takeOidc: prepare(`DELETE FROM oidc WHERE model = :model AND id = :id AND ${LIVE} RETURNING payload, consumed`),
    purgeOidc: prepare('DELETE FROM oidc WHERE rowid IN (SELECT rowid FROM oidc WHERE expires_at <= :now LIMIT :limit)'),
  };

  const records: ExpiringRecordStore = {
    upsert(model, id, payload, expiresInSeconds) {
      const parameters = {
        model: String(model),
        id: String(id),
        payload: JSON.stringify(payload),
        uid: optionalString(payload.uid),
        user_code: optionalString(payload.userCode),
        grant_id: optionalString(payload.grantId),
        // Only a string (what the Mongo store's index on payload.accountId matches too), and only for
        // the models looked up by account: a token's entry in that index was a page more to write.
        account_id: FOUND_BY_ACCOUNT.has(String(model)) && typeof payload.accountId === 'string' ? payload.accountId : null,
        consumed: typeof payload.consumed === 'number' ? payload.consumed : null,
        expires_at: expiresInSeconds === undefined ? null : clock() + expiresInSeconds * 1000,
      };
      return groupCommitted(() => {
        cached.forget(cacheKey(parameters.model, parameters.id));
        statements.upsertOidc.run(parameters);
      });
    },
    async find(model, id) {
      const key = cacheKey(String(model), String(id));
      const now = clock();
      let record = cached.get(key);
      if (record === undefined) {
        const row = statements.findOidc.get({ model: String(model), id: String(id), now }) as (OidcRow & { expires_at: number | null }) | undefined;
        record = row === undefined ? null : { payload: toPayload(row)!, expires_at: row.expires_at };
        cached.set(key, record);
      }
      // A record read while live stays cached after it expires: expiry is checked on every read.
      if (record === null || (record.expires_at !== null && record.expires_at <= now)) return undefined;
      return copyOfJson(record.payload);
    },
    async findByUid(model, uid) {
      return toPayload(statements.findOidcByUid.get({ model: String(model), uid: String(uid), now: clock() }) as OidcRow | undefined);
    },
    async findByUserCode(model, userCode) {
      return toPayload(
        statements.findOidcByUserCode.get({ model: String(model), user_code: String(userCode), now: clock() }) as OidcRow | undefined,
      );
    },
    consume(model, id) {
      const now = clock();
      const parameters = { model: String(model), id: String(id), now, consumed: Math.floor(now / 1000) };
      // The statement's condition (consumed IS NULL) is the compare-and-set: under the write lock,
      // of any number of consumers in any process exactly one changes the row.
      return groupCommitted(() => {
        cached.forget(cacheKey(parameters.model, parameters.id));
        return Number(statements.consumeOidc.run(parameters).changes) === 1;
      });
    },
    swapSuccessor(model, id, successor) {
      const parameters = { model: String(model), id: String(id), successor: String(successor) };
      // Read and write in one group-committed transaction (BEGIN IMMEDIATE): no other writer between.
      return groupCommitted(() => {
        const row = statements.findOidcSuccessor.get({ model: parameters.model, id: parameters.id }) as { successor: string | null } | undefined;
        if (row === undefined) return undefined;
        statements.setOidcSuccessor.run(parameters);
        return row.successor ?? undefined;
      }, 'several');
    },
    destroy(model, id) {
      const parameters = { model: String(model), id: String(id) };
      return groupCommitted(() => {
        cached.forget(cacheKey(parameters.model, parameters.id));
        statements.destroyOidc.run(parameters);
      });
    },
    revokeByGrantId(model, grantId) {
      const parameters = { model: String(model), grant_id: String(grantId) };
      return groupCommitted(() => {
        cached.forgetAll();
        statements.revokeOidcByGrantId.run(parameters);
      });
    },
    async findByAccountId(model, accountId) {
      if (!FOUND_BY_ACCOUNT.has(String(model))) throw new Error(`The SQLite store finds only ${[...FOUND_BY_ACCOUNT].join(', ')} records by account, not ${String(model)}.`);
      const rows = statements.findOidcByAccountId.all({ model: String(model), account_id: String(accountId), now: clock() }) as unknown as Array<
        OidcRow & { id: string }
      >;
      return rows.map((row) => ({ id: row.id, payload: toPayload(row)! }));
    },
    async take(model, id) {
      // DELETE ... RETURNING reads and removes in one statement: of two takers, one gets the row.
      cached.forget(cacheKey(String(model), String(id)));
      return toPayload(statements.takeOidc.get({ model: String(model), id: String(id), now: clock() }) as OidcRow | undefined);
    },
  };

  return {
    records,
    purge: (now, limit) => Number(statements.purgeOidc.run({ now, limit }).changes),
  };
}
