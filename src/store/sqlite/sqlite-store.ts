/**
 * The embedded store: one SQLite file through node:sqlite. Every statement is prepared once at
 * open; multi-row writes run in BEGIN IMMEDIATE transactions so the CLI and a running server can
 * share the file without lost updates.
 */
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';

import type {
  Account,
  AccountChanges,
  AccountRepository,
  AuditRecord,
  AuditRepository,
  ClearableAccountField,
  ClientRepository,
  ImportedAccountFields,
  KeyRepository,
  KeyUse,
  OidcPayload,
  OidcStore,
  Passkey,
  ResourceRepository,
  AccessTokenSigningAlg,
  ResourceServerRecord,
  RevisionName,
  RevisionRepository,
  Store,
  StoredClient,
  StoredKey,
} from '../port.ts';
import { guardStore } from '../outage.ts';
import { clientIdTakenError, emailTakenError, resourceAudienceTakenError, storeUnavailableError } from '../store-errors.ts';
import { createPrivateFile, ensurePrivateDirectory, restrictFiles } from './file-modes.ts';
import { isSqliteDamaged, isSqliteUnavailable } from './sqlite-errors.ts';
import { prepareRateLimitStatements, SqliteRateLimiter } from './sqlite-rate-limiter.ts';

export interface SqliteStoreOptions {
  file: string;
  /** How often expired oidc records, rate limit counters and audit events are deleted; reads ignore them either way. Default 60. */
  purgeIntervalSeconds?: number;
  /** Epoch milliseconds. Tests inject a clock to observe expiry without sleeping. */
  clock?: () => number;
  /** Told what an operator should fix but that does not stop the store (a DATA_DIR open to others). */
  warn?: (message: string) => void;
}

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
 * Append to this list, never edit an entry that has shipped.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS oidc (
    model TEXT NOT NULL,
    id TEXT NOT NULL,
    payload TEXT NOT NULL,
    uid TEXT,
    user_code TEXT,
    grant_id TEXT,
    consumed INTEGER,
    expires_at INTEGER,
    PRIMARY KEY (model, id)
  ) STRICT;
  CREATE INDEX IF NOT EXISTS oidc_model_uid ON oidc (model, uid) WHERE uid IS NOT NULL;
  CREATE INDEX IF NOT EXISTS oidc_model_user_code ON oidc (model, user_code) WHERE user_code IS NOT NULL;
  CREATE INDEX IF NOT EXISTS oidc_model_grant_id ON oidc (model, grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS oidc_expires_at ON oidc (expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE IF NOT EXISTS accounts (
    sub TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    email_verified INTEGER NOT NULL,
    password_hash TEXT NOT NULL,
    name TEXT,
    given_name TEXT,
    family_name TEXT,
    disabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS accounts_created_at ON accounts (created_at, sub);

  CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE IF NOT EXISTS keys (
    kid TEXT PRIMARY KEY,
    use TEXT NOT NULL,
    alg TEXT NOT NULL,
    public_jwk TEXT,
    encrypted_private TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    expires_at INTEGER
  ) STRICT;

  CREATE TABLE IF NOT EXISTS revisions (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) STRICT;
  `,
  // 2: resource servers (RFC 8707 audiences). The primary key uses BINARY collation, so audiences
  // compare exactly: no case folding, no trailing-slash equivalence.
  `
  CREATE TABLE IF NOT EXISTS resources (
    audience TEXT PRIMARY KEY,
    name TEXT,
    scopes TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('jwt', 'opaque')),
    ttl_seconds INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // 3: account security, records by account, rate limits. Existing accounts get the empty
  // defaults; existing records get their account_id from the payload, so they are found by account.
  `
  ALTER TABLE oidc ADD COLUMN account_id TEXT;
  UPDATE oidc SET account_id = json_extract(payload, '$.accountId') WHERE json_type(payload, '$.accountId') = 'text';
  CREATE INDEX IF NOT EXISTS oidc_model_account_id ON oidc (model, account_id) WHERE account_id IS NOT NULL;

  ALTER TABLE accounts ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE accounts ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE accounts ADD COLUMN locked_until INTEGER;
  ALTER TABLE accounts ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;
  -- TOTP as columns (all NULL without TOTP), so advancing the step is one conditional UPDATE.
  ALTER TABLE accounts ADD COLUMN totp_encrypted_secret TEXT;
  ALTER TABLE accounts ADD COLUMN totp_confirmed_at INTEGER;
  ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER;
  ALTER TABLE accounts ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE accounts ADD COLUMN passkeys TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE accounts ADD COLUMN email_otp INTEGER NOT NULL DEFAULT 0;

  CREATE TABLE IF NOT EXISTS rate_limits (
    key TEXT PRIMARY KEY,
    points INTEGER NOT NULL,
    expire INTEGER
  ) STRICT;
  CREATE INDEX IF NOT EXISTS rate_limits_expire ON rate_limits (expire) WHERE expire IS NOT NULL;
  `,
  // 4: scopes a resource server limits to roles (JSON object of scope to roles; NULL: none limited).
  `
  ALTER TABLE resources ADD COLUMN scope_roles TEXT;
  `,
  // 5: the audit trail. Newest-first reads by account, client or type each have their index.
  `
  CREATE TABLE IF NOT EXISTS audit_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    sub TEXT,
    client_id TEXT,
    ip TEXT,
    request_id TEXT,
    details TEXT,
    expires_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at, id);
  CREATE INDEX IF NOT EXISTS audit_events_sub ON audit_events (sub, at, id) WHERE sub IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_events_client ON audit_events (client_id, at, id) WHERE client_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_events_type ON audit_events (type, at, id);
  CREATE INDEX IF NOT EXISTS audit_events_expires_at ON audit_events (expires_at);
  `,
  // 6: accounts without a password (password_hash NULL). SQLite cannot drop a NOT NULL in place, so
  // the table is rebuilt with the same columns and rows (nothing references it by foreign key).
  `
  CREATE TABLE accounts_rebuilt (
    sub TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    email_verified INTEGER NOT NULL,
    password_hash TEXT,
    name TEXT,
    given_name TEXT,
    family_name TEXT,
    disabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    lockouts INTEGER NOT NULL DEFAULT 0,
    totp_encrypted_secret TEXT,
    totp_confirmed_at INTEGER,
    totp_last_step INTEGER,
    recovery_codes TEXT NOT NULL DEFAULT '[]',
    passkeys TEXT NOT NULL DEFAULT '[]',
    email_otp INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  INSERT INTO accounts_rebuilt (sub, email, email_verified, password_hash, name, given_name, family_name, disabled, created_at, updated_at,
    roles, failed_sign_ins, locked_until, lockouts, totp_encrypted_secret, totp_confirmed_at, totp_last_step, recovery_codes, passkeys, email_otp)
  SELECT sub, email, email_verified, password_hash, name, given_name, family_name, disabled, created_at, updated_at,
    roles, failed_sign_ins, locked_until, lockouts, totp_encrypted_secret, totp_confirmed_at, totp_last_step, recovery_codes, passkeys, email_otp
  FROM accounts;
  DROP TABLE accounts;
  ALTER TABLE accounts_rebuilt RENAME TO accounts;
  CREATE INDEX IF NOT EXISTS accounts_created_at ON accounts (created_at, sub);
  `,
  // 7: the successor of a rotated refresh token, so a retry within the reuse grace period replaces
  // the earlier successor instead of forking a second lineage.
  `
  ALTER TABLE oidc ADD COLUMN successor TEXT;
  `,
  // 8: oidc-provider's records are now keyed by a digest of their value (oidc/adapter.ts), so the
  // rows written before, keyed by the working value itself, can no longer be found: delete them
  // rather than keep live tokens and session ids in the file until they expire. Everyone signs in
  // once more, and relying parties get new refresh tokens. Clients and grants keep their keys.
  `
  DELETE FROM oidc WHERE model IN ('Session', 'Interaction', 'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
    'ClientCredentials', 'BackchannelAuthenticationRequest', 'PushedAuthorizationRequest', 'RegistrationAccessToken',
    'InitialAccessToken', 'ReplayDetection');
  `,
  // 9: imported accounts: their id in the system they came from, and the digest of what the import wrote.
  `
  ALTER TABLE accounts ADD COLUMN external_id TEXT;
  ALTER TABLE accounts ADD COLUMN import_digest TEXT;
  CREATE UNIQUE INDEX IF NOT EXISTS accounts_external_id ON accounts (external_id) WHERE external_id IS NOT NULL;
  `,
  // 10: the JWS algorithm of a resource server's JWT access tokens (NULL: RS256).
  `
  ALTER TABLE resources ADD COLUMN signing_alg TEXT;
  `,
];

export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.length;

/** Long enough for a CLI write to finish while the server holds the lock, short enough to surface a stuck writer. */
const BUSY_TIMEOUT_MS = 5000;
/** Rows deleted per purge statement, so one purge never holds the write lock for long. */
const PURGE_BATCH = 500;

interface OidcRow {
  payload: string;
  consumed: number | null;
}

interface AccountRow {
  sub: string;
  email: string;
  email_verified: number;
  password_hash: string | null;
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  disabled: number;
  /** JSON array of strings. */
  roles: string;
  failed_sign_ins: number;
  locked_until: number | null;
  lockouts: number;
  totp_encrypted_secret: string | null;
  totp_confirmed_at: number | null;
  totp_last_step: number | null;
  /** JSON array of strings. */
  recovery_codes: string;
  /** JSON array of StoredPasskey. */
  passkeys: string;
  email_otp: number;
  external_id: string | null;
  import_digest: string | null;
  created_at: number;
  updated_at: number;
}

/** A passkey as kept in the JSON column: dates as epoch milliseconds. */
interface StoredPasskey {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports?: string[];
  name: string;
  createdAt: number;
  lastUsedAt?: number;
}

type AccountColumn = Exclude<keyof AccountRow, 'sub' | 'email' | 'created_at' | 'updated_at' | 'external_id' | 'import_digest'>;

interface ClientRow {
  client_id: string;
  metadata: string;
  created_at: number;
}

interface ResourceRow {
  audience: string;
  name: string | null;
  scopes: string;
  format: string;
  ttl_seconds: number;
  /** JSON object of scope to roles, or NULL. */
  scope_roles: string | null;
  /** NULL: RS256. */
  signing_alg: string | null;
  created_at: number;
}

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

export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const clock = options.clock ?? Date.now;
  const purgeIntervalMs = Math.max(1, Math.round((options.purgeIntervalSeconds ?? 60) * 1000));

  if (options.file !== ':memory:') {
    const warning = ensurePrivateDirectory(path.dirname(path.resolve(options.file)));
    if (warning !== undefined) options.warn?.(warning);
    createPrivateFile(options.file);
  }

  let db: DatabaseSync;
  try {
    db = new DatabaseSync(options.file, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw storeUnavailableError(`Cannot open the SQLite database ${options.file}.`, error);
  }

  let statements: ReturnType<typeof prepareStatements>;
  let rateLimitStatements: ReturnType<typeof prepareRateLimitStatements>;
  try {
    configure(db);
    if (options.file !== ':memory:') restrictFiles([options.file, `${options.file}-wal`, `${options.file}-shm`]);
    migrate(db, options.file);
    statements = prepareStatements(db);
    rateLimitStatements = prepareRateLimitStatements(db);
  } catch (error) {
    db.close();
    if (isSqliteDamaged(error)) throw storeUnavailableError(damagedMessage(options.file, error), error);
    throw error;
  }

  function transaction<T>(work: () => T): T {
    // IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades can
    // fail with SQLITE_BUSY immediately (busy_timeout does not apply to that deadlock).
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      db.exec('COMMIT');
      return result;
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw error;
    }
  }

  function bumpRevision(name: RevisionName): number {
    const row = statements.bumpRevision.get({ name }) as { value: number } | undefined;
    if (row === undefined) throw storeUnavailableError('SQLite did not return the new revision.');
    return row.value;
  }

  /**
   * Group commit for oidc-provider's writes, the hot ones (a sign-in makes about sixteen: interactions,
   * sessions, grant, code, tokens; a refresh three). With synchronous=FULL every commit waits for the
   * disk, and DatabaseSync holds the event loop while it does: one commit per write made the disk
   * the limit of sign-ins and refreshes (profiled with bench/run.ts: about 1 ms a write under load,
   * most of a sign-in's event-loop time). Writes issued during one turn of the event loop are queued
   * and run together in one transaction right after it (setImmediate): one fsync for all of them.
   * Each write's promise settles after that COMMIT, so nothing is acknowledged before it is on disk,
   * as before; a write that fails fails alone (a savepoint each). Until its promise settles a write
   * is not visible to reads; oidc-provider awaits every write before it goes on.
   */
  let pendingWrites: Array<{ run(): void; resolve(): void; reject(error: unknown): void; statements: 'one' | 'several' }> = [];

  /**
   * Resolves with what `run` returned, once the transaction it ran in has committed. A write of
   * several statements (a read, then a write that depends on it) says so: alone in its turn it
   * still runs in a transaction, so another process cannot write in between.
   */
  function groupCommitted<T = void>(run: () => T, statements: 'one' | 'several' = 'one'): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (pendingWrites.length === 0) setImmediate(flushWrites);
      let result: T;
      pendingWrites.push({
        run: () => {
          result = run();
        },
        resolve: () => resolve(result),
        reject,
        statements,
      });
    });
  }

  function flushWrites(): void {
    const writes = pendingWrites;
    pendingWrites = [];
    if (writes.length === 0) return;
    if (writes.length === 1 && writes[0]!.statements === 'one') {
      try {
        writes[0]!.run();
        writes[0]!.resolve();
      } catch (error) {
        writes[0]!.reject(error);
      }
      return;
    }
    const failures = new Map<number, unknown>();
    try {
      db.exec('BEGIN IMMEDIATE');
      writes.forEach((write, index) => {
        db.exec('SAVEPOINT oidc_write');
        try {
          write.run();
          db.exec('RELEASE oidc_write');
        } catch (error) {
          db.exec('ROLLBACK TO oidc_write');
          db.exec('RELEASE oidc_write');
          failures.set(index, error);
        }
      });
      db.exec('COMMIT');
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      for (const write of writes) write.reject(error);
      return;
    }
    writes.forEach((write, index) => (failures.has(index) ? write.reject(failures.get(index)) : write.resolve()));
  }

  const oidc: OidcStore = {
    upsert(model, id, payload, expiresInSeconds) {
      const parameters = {
        model: String(model),
        id: String(id),
        payload: JSON.stringify(payload),
        uid: optionalString(payload.uid),
        user_code: optionalString(payload.userCode),
        grant_id: optionalString(payload.grantId),
        // Only a string: what the Mongo store's index on payload.accountId matches too.
        account_id: typeof payload.accountId === 'string' ? payload.accountId : null,
        consumed: typeof payload.consumed === 'number' ? payload.consumed : null,
        expires_at: expiresInSeconds === undefined ? null : clock() + expiresInSeconds * 1000,
      };
      return groupCommitted(() => void statements.upsertOidc.run(parameters));
    },
    async find(model, id) {
      return toPayload(statements.findOidc.get({ model: String(model), id: String(id), now: clock() }) as OidcRow | undefined);
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
      return groupCommitted(() => Number(statements.consumeOidc.run(parameters).changes) === 1);
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
      return groupCommitted(() => void statements.destroyOidc.run(parameters));
    },
    revokeByGrantId(model, grantId) {
      const parameters = { model: String(model), grant_id: String(grantId) };
      return groupCommitted(() => void statements.revokeOidcByGrantId.run(parameters));
    },
    async findByAccountId(model, accountId) {
      const rows = statements.findOidcByAccountId.all({ model: String(model), account_id: String(accountId), now: clock() }) as unknown as Array<
        OidcRow & { id: string }
      >;
      return rows.map((row) => ({ id: row.id, payload: toPayload(row)! }));
    },
    async take(model, id) {
      // DELETE ... RETURNING reads and removes in one statement: of two takers, one gets the row.
      return toPayload(statements.takeOidc.get({ model: String(model), id: String(id), now: clock() }) as OidcRow | undefined);
    },
  };

  const accounts: AccountRepository = {
    async create(input) {
      const now = clock();
      try {
        // The security columns start at their defaults (see migration 3).
        statements.insertAccount.run({
          sub: String(input.sub),
          email: String(input.email),
          email_verified: input.emailVerified ? 1 : 0,
          password_hash: input.passwordHash === undefined ? null : String(input.passwordHash),
          name: optionalString(input.name),
          given_name: optionalString(input.givenName),
          family_name: optionalString(input.familyName),
          disabled: input.disabled ? 1 : 0,
          roles: JSON.stringify((input.roles ?? []).map(String)),
          created_at: now,
          updated_at: now,
        });
      } catch (error) {
        if (isUniqueViolation(error, 'accounts.email')) throw emailTakenError(error);
        throw error;
      }
      const created = statements.findAccountBySub.get({ sub: String(input.sub) }) as AccountRow | undefined;
      if (created === undefined) throw storeUnavailableError('The account just created cannot be read back.');
      return toAccount(created);
    },
    async findBySub(sub) {
      const row = statements.findAccountBySub.get({ sub: String(sub) }) as AccountRow | undefined;
      return row === undefined ? undefined : toAccount(row);
    },
    async findByEmail(email) {
      const row = statements.findAccountByEmail.get({ email: String(email) }) as AccountRow | undefined;
      return row === undefined ? undefined : toAccount(row);
    },
    async findByExternalId(externalId) {
      const row = statements.findAccountByExternalId.get({ external_id: String(externalId) }) as AccountRow | undefined;
      return row === undefined ? undefined : toAccount(row);
    },
    async importAccounts(writes) {
      const now = clock();
      // One transaction for the batch: a kill leaves all of it or none, and one commit (one fsync)
      // per batch is what makes a large import fast.
      return transaction(() => writes.map((write) => {
        const parameters = importParameters(write.fields);
        try {
          const result = write.kind === 'create'
            ? statements.insertImportedAccount.run({ ...parameters, sub: String(write.sub), created_at: write.createdAt.getTime(), updated_at: now })
            : statements.updateImportedAccount.run({ ...parameters, sub: String(write.sub), expected_updated_at: write.expectedUpdatedAt.getTime(), updated_at: now });
          return Number(result.changes) > 0;
        } catch (error) {
          // Taken since it was read (another import or a registration): that account is skipped, the batch goes on.
          if (isUniqueViolation(error, 'accounts.email') || isUniqueViolation(error, 'accounts.external_id')) return false;
          throw error;
        }
      }));
    },
    async update(sub, changes) {
      const result = statements.updateAccount.run({ ...accountUpdateParameters(changes), sub: String(sub), updated_at: clock() });
      return Number(result.changes) > 0;
    },
    async list(listOptions = {}) {
      const rows = statements.listAccounts.all({
        // LIMIT -1 is SQLite for "no limit".
        limit: listOptions.limit ?? -1,
        offset: listOptions.offset ?? 0,
      }) as unknown as AccountRow[];
      return rows.map(toAccount);
    },
    async countSignInAttempt(sub, now) {
      // One statement: the lock is read and the count moved under the same write lock.
      const row = statements.countSignInAttempt.get({ sub: String(sub), now: now.getTime(), updated_at: clock() }) as { failed_sign_ins: number; locked_until: number | null } | undefined;
      if (row === undefined) return undefined;
      const locked = row.locked_until !== null && row.locked_until > now.getTime();
      return locked ? { attempts: row.failed_sign_ins, lockedUntil: new Date(row.locked_until!) } : { attempts: row.failed_sign_ins };
    },
    async lockAfterFailures(sub, threshold, lockedUntil) {
      const result = statements.lockAfterFailures.run({ sub: String(sub), threshold, locked_until: lockedUntil.getTime(), updated_at: clock() });
      return Number(result.changes) > 0;
    },
    async recordPasskeyUse(sub, credentialId, counter, usedAt) {
      const id = String(credentialId);
      // Read and write under the write lock: a removal committed first is seen, one after waits.
      return transaction(() => {
        const row = statements.findPasskeys.get({ sub: String(sub) }) as { passkeys: string } | undefined;
        if (row === undefined) return false;
        const stored = JSON.parse(row.passkeys) as StoredPasskey[];
        const found = stored.find((passkey) => passkey.credentialId === id);
        if (!found) return false;
        found.counter = counter;
        found.lastUsedAt = usedAt.getTime();
        statements.setPasskeys.run({ sub: String(sub), passkeys: JSON.stringify(stored), updated_at: clock() });
        return true;
      });
    },
    async consumeRecoveryCode(sub, codeHash) {
      const hash = String(codeHash);
      // Read, remove, write under the write lock, so a second caller sees the code already gone.
      return transaction(() => {
        const row = statements.findRecoveryCodes.get({ sub: String(sub) }) as { recovery_codes: string } | undefined;
        if (row === undefined) return false;
        const codes = JSON.parse(row.recovery_codes) as string[];
        if (!codes.includes(hash)) return false;
        statements.setRecoveryCodes.run({ sub: String(sub), recovery_codes: JSON.stringify(codes.filter((code) => code !== hash)), updated_at: clock() });
        return true;
      });
    },
    async advanceTotpStep(sub, step) {
      if (!Number.isFinite(step)) return false;
      const result = statements.advanceTotpStep.run({ sub: String(sub), step, updated_at: clock() });
      return Number(result.changes) > 0;
    },
  };

  const clients: ClientRepository = {
    async create(client) {
      const clientId = String(client.clientId);
      const createdAt = clock();
      const metadata = JSON.stringify(client.metadata);
      try {
        transaction(() => {
          statements.insertClient.run({ client_id: clientId, metadata, created_at: createdAt });
          bumpRevision('clients');
        });
      } catch (error) {
        if (isUniqueViolation(error, 'clients.client_id')) throw clientIdTakenError(clientId, error);
        throw error;
      }
      // Parsed back from what was stored, so the caller sees exactly what find() will return.
      return { clientId, metadata: JSON.parse(metadata) as Record<string, unknown>, createdAt: new Date(createdAt) };
    },
    async find(clientId) {
      const row = statements.findClient.get({ client_id: String(clientId) }) as ClientRow | undefined;
      return row === undefined ? undefined : toClient(row);
    },
    async update(clientId, metadata) {
      return transaction(() => {
        const result = statements.updateClient.run({ client_id: String(clientId), metadata: JSON.stringify(metadata) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('clients');
        return true;
      });
    },
    async list() {
      return (statements.listClients.all() as unknown as ClientRow[]).map(toClient);
    },
    async delete(clientId) {
      return transaction(() => {
        const result = statements.deleteClient.run({ client_id: String(clientId) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('clients');
        return true;
      });
    },
  };

  const resources: ResourceRepository = {
    async create(resource) {
      const audience = String(resource.audience);
      const createdAt = clock();
      const row: ResourceRow = {
        audience,
        name: optionalString(resource.name),
        scopes: JSON.stringify(resource.scopes.map(String)),
        format: resource.format,
        ttl_seconds: resource.ttlSeconds,
        scope_roles: resource.scopeRoles && Object.keys(resource.scopeRoles).length
          ? JSON.stringify(Object.fromEntries(Object.entries(resource.scopeRoles).map(([scope, roles]) => [String(scope), roles.map(String)])))
          : null,
        signing_alg: resource.signingAlg ?? null,
        created_at: createdAt,
      };
      try {
        transaction(() => {
          statements.insertResource.run({ ...row });
          bumpRevision('resources');
        });
      } catch (error) {
        if (isUniqueViolation(error, 'resources.audience')) throw resourceAudienceTakenError(audience, error);
        throw error;
      }
      // Built from what was stored, so the caller sees exactly what find() will return.
      return toResource(row);
    },
    async find(audience) {
      const row = statements.findResource.get({ audience: String(audience) }) as ResourceRow | undefined;
      return row === undefined ? undefined : toResource(row);
    },
    async list() {
      return (statements.listResources.all() as unknown as ResourceRow[]).map(toResource);
    },
    async delete(audience) {
      return transaction(() => {
        const result = statements.deleteResource.run({ audience: String(audience) });
        if (Number(result.changes) === 0) return false;
        bumpRevision('resources');
        return true;
      });
    },
  };

  const keys: KeyRepository = {
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

  // Each combination of filters gets its own statement (prepared once), so every query can use the
  // index that fits it; `IS NULL OR` conditions in one shared statement would defeat the indexes.
  const auditQueries = new Map<string, StatementSync>();
  const audit: AuditRepository = {
    async append(records) {
      if (records.length === 0) return;
      transaction(() => {
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
      });
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

  const revisions: RevisionRepository = {
    async get(name) {
      const row = statements.getRevision.get({ name }) as { value: number } | undefined;
      return row?.value ?? 0;
    },
    async bump(name) {
      return bumpRevision(name);
    },
  };

  let closed = false;
  let purging = false;

  function purgeExpired(): void {
    if (closed || purging) return;
    purging = true;
    const purgeBatch = (): void => {
      if (closed) {
        purging = false;
        return;
      }
      let removed: number;
      try {
        removed = Math.max(
          Number(statements.purgeOidc.run({ now: clock(), limit: PURGE_BATCH }).changes),
          // Wall-clock time, as the limiter counts (see sqlite-rate-limiter.ts).
          Number(rateLimitStatements.purge.run({ now: Date.now(), limit: PURGE_BATCH }).changes),
          Number(statements.purgeAuditEvents.run({ now: clock(), limit: PURGE_BATCH }).changes),
        );
      } catch {
        // Housekeeping only (reads already ignore expired rows): a busy database just waits for the next round.
        purging = false;
        return;
      }
      // A full batch means there is probably more; yield to the event loop between batches.
      if (removed === PURGE_BATCH) setImmediate(purgeBatch).unref();
      else purging = false;
    };
    purgeBatch();
  }

  const purgeTimer = setInterval(purgeExpired, purgeIntervalMs);
  purgeTimer.unref();

  // Busy, full or closed: 503 with Retry-After rather than a 500 (store/outage.ts).
  return guardStore({
    kind: 'sqlite',
    oidc,
    accounts,
    clients,
    resources,
    keys,
    revisions,
    audit,
    rateLimiter(limiterOptions) {
      return new SqliteRateLimiter(rateLimitStatements, limiterOptions);
    },
    async ping() {
      try {
        statements.ping.get();
      } catch (error) {
        throw storeUnavailableError('The SQLite database is not usable.', error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(purgeTimer);
      // Writes still queued for this turn's group commit are committed (and acknowledged) first.
      flushWrites();
      try {
        // Recommended by SQLite for long-lived connections: refreshes planner statistics cheaply.
        db.exec('PRAGMA optimize');
      } catch {
        // Only an optimisation; closing matters more.
      }
      db.close();
    },
  }, {
    isUnavailable: isSqliteUnavailable,
    // Damage found after open (pages no query at open touched) still names the file.
    describe: (error) => (isSqliteDamaged(error) ? damagedMessage(options.file, error) : undefined),
  });
}

function configure(db: DatabaseSync): void {
  // Also set by the constructor's `timeout`; repeated so the intent is visible next to the others.
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string } | undefined;
  // An in-memory database reports "memory" and cannot use WAL; a file must.
  if (mode?.journal_mode !== 'wal' && mode?.journal_mode !== 'memory') {
    throw storeUnavailableError(`SQLite refused WAL mode (journal_mode is ${String(mode?.journal_mode)}).`);
  }
  // FULL syncs the WAL on every commit: an acknowledged write survives power loss, not only a
  // process crash (NORMAL in WAL mode may lose the last commits on power loss).
  db.exec('PRAGMA synchronous = FULL');
}

/** What an operator can act on, in one line: which file, and what to do. */
function damagedMessage(file: string, error: unknown): string {
  return `The SQLite database ${path.resolve(file)} is damaged (${error instanceof Error ? error.message : String(error)}); stop Tessera and restore it from a backup.`;
}

function migrate(db: DatabaseSync, file: string): void {
  const readVersion = (): number => (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (readVersion() === SQLITE_SCHEMA_VERSION) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Read again under the write lock: another process may have migrated meanwhile.
    const current = readVersion();
    if (current > SQLITE_SCHEMA_VERSION) {
      throw storeUnavailableError(
        `The SQLite database ${file} has schema version ${current}, newer than this Tessera understands (${SQLITE_SCHEMA_VERSION}).`,
      );
    }
    // Rows a migration deletes (verbatim tokens, migration 8) are overwritten, not left in free pages.
    db.exec('PRAGMA secure_delete = ON');
    for (let version = current; version < SQLITE_SCHEMA_VERSION; version += 1) db.exec(SQLITE_MIGRATIONS[version]!);
    db.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
    db.exec('COMMIT');
    db.exec('PRAGMA secure_delete = OFF');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

const LIVE = '(expires_at IS NULL OR expires_at > :now)';
const ACCOUNT_COLUMNS = `sub, email, email_verified, password_hash, name, given_name, family_name, disabled, roles, failed_sign_ins,
  locked_until, lockouts, totp_encrypted_secret, totp_confirmed_at, totp_last_step, recovery_codes, passkeys, email_otp, external_id, import_digest,
  created_at, updated_at`;
/** Every column update() may write; each takes a `:set_<column>` flag and a `:<column>` value. */
const UPDATABLE_ACCOUNT_COLUMNS: readonly AccountColumn[] = [
  'password_hash', 'disabled', 'email_verified', 'name', 'given_name', 'family_name', 'roles', 'failed_sign_ins',
  'locked_until', 'lockouts', 'totp_encrypted_secret', 'totp_confirmed_at', 'totp_last_step', 'recovery_codes', 'passkeys', 'email_otp',
];
const RESOURCE_COLUMNS = 'audience, name, scopes, format, ttl_seconds, scope_roles, signing_alg, created_at';
const KEY_COLUMNS = 'kid, use, alg, public_jwk, encrypted_private, created_at, retired_at, expires_at';
const AUDIT_COLUMNS = 'id, type, at, sub, client_id, ip, request_id, details, expires_at';

function prepareStatements(db: DatabaseSync) {
  const prepare = (sql: string): StatementSync => db.prepare(sql);
  return {
    ping: prepare('SELECT 1'),

    upsertOidc: prepare(`
      INSERT INTO oidc (model, id, payload, uid, user_code, grant_id, account_id, consumed, expires_at)
      VALUES (:model, :id, :payload, :uid, :user_code, :grant_id, :account_id, :consumed, :expires_at)
      ON CONFLICT (model, id) DO UPDATE SET
        payload = excluded.payload, uid = excluded.uid, user_code = excluded.user_code, grant_id = excluded.grant_id,
        account_id = excluded.account_id, consumed = excluded.consumed, expires_at = excluded.expires_at`),
    findOidc: prepare(`SELECT payload, consumed FROM oidc WHERE model = :model AND id = :id AND ${LIVE}`),
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

    insertAccount: prepare(`
      INSERT INTO accounts (sub, email, email_verified, password_hash, name, given_name, family_name, disabled, roles, created_at, updated_at)
      VALUES (:sub, :email, :email_verified, :password_hash, :name, :given_name, :family_name, :disabled, :roles, :created_at, :updated_at)`),
    findAccountBySub: prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE sub = :sub`),
    findAccountByEmail: prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE email = :email`),
    findAccountByExternalId: prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE external_id = :external_id`),
    insertImportedAccount: prepare(`
      INSERT INTO accounts (sub, email, email_verified, password_hash, name, given_name, family_name, disabled, roles, external_id, import_digest, created_at, updated_at)
      VALUES (:sub, :email, :email_verified, :password_hash, :name, :given_name, :family_name, 0, :roles, :external_id, :import_digest, :created_at, :updated_at)`),
    // The updated_at condition is the check: a change made since the import read the account wins.
    updateImportedAccount: prepare(`
      UPDATE accounts SET email = :email, email_verified = :email_verified, password_hash = :password_hash, name = :name,
        given_name = :given_name, family_name = :family_name, roles = :roles, external_id = :external_id,
        import_digest = :import_digest, updated_at = :updated_at
      WHERE sub = :sub AND updated_at = :expected_updated_at`),
    // One statement for any combination of changes: a column keeps its value unless its flag is set.
    updateAccount: prepare(`
      UPDATE accounts SET
        ${UPDATABLE_ACCOUNT_COLUMNS.map((column) => `${column} = CASE WHEN :set_${column} = 1 THEN :${column} ELSE ${column} END`).join(',\n        ')},
        updated_at = :updated_at
      WHERE sub = :sub`),
    // A locked account's attempts are not counted: the count a lock leaves (0) starts over when it ends.
    countSignInAttempt: prepare(`
      UPDATE accounts SET
        failed_sign_ins = CASE WHEN locked_until IS NOT NULL AND locked_until > :now THEN failed_sign_ins ELSE failed_sign_ins + 1 END,
        updated_at = :updated_at
      WHERE sub = :sub
      RETURNING failed_sign_ins, locked_until`),
    lockAfterFailures: prepare(`
      UPDATE accounts SET locked_until = :locked_until, lockouts = lockouts + 1, failed_sign_ins = 0, updated_at = :updated_at
      WHERE sub = :sub AND failed_sign_ins >= :threshold`),
    findPasskeys: prepare('SELECT passkeys FROM accounts WHERE sub = :sub'),
    setPasskeys: prepare('UPDATE accounts SET passkeys = :passkeys, updated_at = :updated_at WHERE sub = :sub'),
    findRecoveryCodes: prepare('SELECT recovery_codes FROM accounts WHERE sub = :sub'),
    setRecoveryCodes: prepare('UPDATE accounts SET recovery_codes = :recovery_codes, updated_at = :updated_at WHERE sub = :sub'),
    // The condition is the check: of two callers with the same step, only the first changes the row.
    advanceTotpStep: prepare(`
      UPDATE accounts SET totp_last_step = :step, updated_at = :updated_at
      WHERE sub = :sub AND totp_encrypted_secret IS NOT NULL AND totp_last_step < :step`),
    listAccounts: prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, sub LIMIT :limit OFFSET :offset`),

    insertClient: prepare('INSERT INTO clients (client_id, metadata, created_at) VALUES (:client_id, :metadata, :created_at)'),
    findClient: prepare('SELECT client_id, metadata, created_at FROM clients WHERE client_id = :client_id'),
    updateClient: prepare('UPDATE clients SET metadata = :metadata WHERE client_id = :client_id'),
    listClients: prepare('SELECT client_id, metadata, created_at FROM clients ORDER BY created_at, client_id'),
    deleteClient: prepare('DELETE FROM clients WHERE client_id = :client_id'),

    insertResource: prepare(`
      INSERT INTO resources (${RESOURCE_COLUMNS})
      VALUES (:audience, :name, :scopes, :format, :ttl_seconds, :scope_roles, :signing_alg, :created_at)`),
    findResource: prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources WHERE audience = :audience`),
    listResources: prepare(`SELECT ${RESOURCE_COLUMNS} FROM resources ORDER BY created_at, audience`),
    deleteResource: prepare('DELETE FROM resources WHERE audience = :audience'),

    // rowid breaks ties between keys created in the same millisecond by insertion order.
    listKeys: prepare(`SELECT ${KEY_COLUMNS} FROM keys WHERE ${LIVE} ORDER BY created_at, rowid`),
    retireKeys: prepare('UPDATE keys SET retired_at = :retired_at, expires_at = :expires_at WHERE use = :use AND retired_at IS NULL'),
    insertKey: prepare(`
      INSERT INTO keys (${KEY_COLUMNS})
      VALUES (:kid, :use, :alg, :public_jwk, :encrypted_private, :created_at, :retired_at, :expires_at)`),

    insertAuditEvent: prepare(`
      INSERT INTO audit_events (${AUDIT_COLUMNS})
      VALUES (:id, :type, :at, :sub, :client_id, :ip, :request_id, :details, :expires_at)
      ON CONFLICT (id) DO NOTHING`),
    purgeAuditEvents: prepare('DELETE FROM audit_events WHERE rowid IN (SELECT rowid FROM audit_events WHERE expires_at <= :now LIMIT :limit)'),

    getRevision: prepare('SELECT value FROM revisions WHERE name = :name'),
    bumpRevision: prepare(`
      INSERT INTO revisions (name, value) VALUES (:name, 1)
      ON CONFLICT (name) DO UPDATE SET value = value + 1
      RETURNING value`),
  };
}

function toPayload(row: OidcRow | undefined): OidcPayload | undefined {
  if (row === undefined) return undefined;
  const payload = JSON.parse(row.payload) as OidcPayload;
  if (row.consumed !== null) payload.consumed = row.consumed;
  return payload;
}

function toAccount(row: AccountRow): Account {
  const account: Account = {
    sub: row.sub,
    email: row.email,
    emailVerified: row.email_verified === 1,
    disabled: row.disabled === 1,
    roles: JSON.parse(row.roles) as string[],
    failedSignIns: row.failed_sign_ins,
    lockouts: row.lockouts,
    recoveryCodes: JSON.parse(row.recovery_codes) as string[],
    passkeys: (JSON.parse(row.passkeys) as StoredPasskey[]).map(toPasskey),
    emailOtp: row.email_otp === 1,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
  if (row.password_hash !== null) account.passwordHash = row.password_hash;
  if (row.name !== null) account.name = row.name;
  if (row.given_name !== null) account.givenName = row.given_name;
  if (row.family_name !== null) account.familyName = row.family_name;
  if (row.locked_until !== null) account.lockedUntil = new Date(row.locked_until);
  if (row.external_id !== null) account.externalId = row.external_id;
  if (row.import_digest !== null) account.importDigest = row.import_digest;
  if (row.totp_encrypted_secret !== null) {
    account.totp = { encryptedSecret: row.totp_encrypted_secret, lastStep: row.totp_last_step ?? 0 };
    if (row.totp_confirmed_at !== null) account.totp.confirmedAt = new Date(row.totp_confirmed_at);
  }
  return account;
}

function toPasskey(stored: StoredPasskey): Passkey {
  const passkey: Passkey = {
    credentialId: stored.credentialId,
    publicKey: stored.publicKey,
    counter: stored.counter,
    name: stored.name,
    createdAt: new Date(stored.createdAt),
  };
  if (stored.transports !== undefined) passkey.transports = stored.transports;
  if (stored.lastUsedAt !== undefined) passkey.lastUsedAt = new Date(stored.lastUsedAt);
  return passkey;
}

function toStoredPasskey(passkey: Passkey): StoredPasskey {
  const stored: StoredPasskey = {
    credentialId: String(passkey.credentialId),
    publicKey: String(passkey.publicKey),
    counter: passkey.counter,
    name: String(passkey.name),
    createdAt: passkey.createdAt.getTime(),
  };
  if (passkey.transports != null) stored.transports = passkey.transports.map(String);
  if (passkey.lastUsedAt != null) stored.lastUsedAt = passkey.lastUsedAt.getTime();
  return stored;
}

/** The columns of each field `null` clears (the port's CLEARABLE_ACCOUNT_FIELDS); every other field refuses null. */
const CLEARED_COLUMNS: Partial<Record<keyof AccountChanges, readonly AccountColumn[]>> = {
  name: ['name'],
  givenName: ['given_name'],
  familyName: ['family_name'],
  lockedUntil: ['locked_until'],
  totp: ['totp_encrypted_secret', 'totp_confirmed_at', 'totp_last_step'],
} satisfies Record<ClearableAccountField, readonly AccountColumn[]>;

/**
 * The parameters of the updateAccount statement: `undefined` leaves a column alone (flag 0), `null`
 * clears an optional field, anything else is written in the column's representation.
 */
function accountUpdateParameters(changes: AccountChanges): Record<string, string | number | null> {
  const parameters: Record<string, string | number | null> = {};
  for (const column of UPDATABLE_ACCOUNT_COLUMNS) {
    parameters[`set_${column}`] = 0;
    parameters[column] = null;
  }
  const write = (column: AccountColumn, value: string | number | null) => {
    parameters[`set_${column}`] = 1;
    parameters[column] = value;
  };
  const entries: { [K in keyof Required<AccountChanges>]: (value: NonNullable<AccountChanges[K]>) => void } = {
    passwordHash: (value) => write('password_hash', String(value)),
    disabled: (value) => write('disabled', value ? 1 : 0),
    emailVerified: (value) => write('email_verified', value ? 1 : 0),
    name: (value) => write('name', String(value)),
    givenName: (value) => write('given_name', String(value)),
    familyName: (value) => write('family_name', String(value)),
    roles: (value) => write('roles', JSON.stringify(value.map(String))),
    failedSignIns: (value) => write('failed_sign_ins', value),
    lockedUntil: (value) => write('locked_until', value.getTime()),
    lockouts: (value) => write('lockouts', value),
    totp: (value) => {
      write('totp_encrypted_secret', String(value.encryptedSecret));
      write('totp_confirmed_at', value.confirmedAt?.getTime() ?? null);
      write('totp_last_step', value.lastStep);
    },
    recoveryCodes: (value) => write('recovery_codes', JSON.stringify(value.map(String))),
    passkeys: (value) => write('passkeys', JSON.stringify(value.map(toStoredPasskey))),
    emailOtp: (value) => write('email_otp', value ? 1 : 0),
  };
  for (const field of Object.keys(entries) as Array<keyof AccountChanges>) {
    const value = changes[field];
    if (value === undefined) continue;
    if (value === null) {
      const columns = CLEARED_COLUMNS[field];
      if (columns === undefined) throw new TypeError(`The account field ${field} cannot be cleared.`);
      for (const column of columns) write(column, null);
      continue;
    }
    (entries[field] as (value: unknown) => void)(value);
  }
  return parameters;
}

function importParameters(fields: ImportedAccountFields): Record<string, string | number | null> {
  return {
    email: String(fields.email),
    email_verified: fields.emailVerified ? 1 : 0,
    password_hash: optionalString(fields.passwordHash),
    name: optionalString(fields.name),
    given_name: optionalString(fields.givenName),
    family_name: optionalString(fields.familyName),
    roles: JSON.stringify(fields.roles.map(String)),
    external_id: optionalString(fields.externalId),
    import_digest: String(fields.importDigest),
  };
}

function toClient(row: ClientRow): StoredClient {
  return { clientId: row.client_id, metadata: JSON.parse(row.metadata) as Record<string, unknown>, createdAt: new Date(row.created_at) };
}

function toResource(row: ResourceRow): ResourceServerRecord {
  const resource: ResourceServerRecord = {
    audience: row.audience,
    scopes: JSON.parse(row.scopes) as string[],
    format: row.format as ResourceServerRecord['format'],
    ttlSeconds: row.ttl_seconds,
    createdAt: new Date(row.created_at),
  };
  if (row.name !== null) resource.name = row.name;
  if (row.scope_roles !== null) resource.scopeRoles = JSON.parse(row.scope_roles) as Record<string, string[]>;
  if (row.signing_alg !== null) resource.signingAlg = row.signing_alg as AccessTokenSigningAlg;
  return resource;
}

function toAuditRecord(row: AuditRow): AuditRecord {
  const record: AuditRecord = { id: row.id, type: row.type, at: new Date(row.at), expiresAt: new Date(row.expires_at) };
  if (row.sub !== null) record.sub = row.sub;
  if (row.client_id !== null) record.clientId = row.client_id;
  if (row.ip !== null) record.ip = row.ip;
  if (row.request_id !== null) record.requestId = row.request_id;
  if (row.details !== null) record.details = JSON.parse(row.details) as Record<string, unknown>;
  return record;
}

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

function optionalString(value: unknown): string | null {
  return value === undefined || value === null ? null : String(value);
}

/** SQLITE_CONSTRAINT_UNIQUE (2067) or SQLITE_CONSTRAINT_PRIMARYKEY (1555) on the given table.column. */
function isUniqueViolation(error: unknown, column: string): boolean {
  if (!(error instanceof Error)) return false;
  const errcode = (error as Error & { errcode?: unknown }).errcode;
  return (errcode === 2067 || errcode === 1555) && error.message.includes(column);
}
