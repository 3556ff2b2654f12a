/**
 * The SQLite schema as an ordered list of migrations, and the one function that applies them at
 * open (never on a request path). `PRAGMA user_version` records how many have run.
 */
import type { DatabaseSync } from 'node:sqlite';

import { storeUnavailableError } from '../store-errors.ts';

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
  // 10: upstream identity providers and the identities linked through them.
  `
  CREATE TABLE IF NOT EXISTS upstreams (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    encrypted_client_secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE IF NOT EXISTS identities (
    upstream_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_sub TEXT NOT NULL,
    email TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (upstream_id, subject)
  ) STRICT;
  CREATE INDEX IF NOT EXISTS identities_account ON identities (account_sub, created_at);
  `,
  // 11: the clients a resource server accepts in the code flow (JSON array; NULL: any client, by consent).
  `
  ALTER TABLE resources ADD COLUMN clients TEXT;
  `,
  // 12: locked accounts found through an index (the console's overview and status=locked searches),
  // not by reading every account: few accounts are ever locked, so the partial index stays small.
  `
  CREATE INDEX IF NOT EXISTS accounts_locked_until ON accounts (locked_until) WHERE locked_until IS NOT NULL;
  `,
  // 13: the JWS algorithm of a resource server's JWT access tokens (NULL: RS256).
  `
  ALTER TABLE resources ADD COLUMN signing_alg TEXT;
  `,
  // 14: only sessions, grants and emailed links are found by account (expiring-records.ts): tokens,
  // codes and interactions leave the account_id index, which they only made longer to write.
  `
  UPDATE oidc SET account_id = NULL WHERE account_id IS NOT NULL AND model NOT IN ('Session', 'Grant', 'EmailVerification', 'PasswordReset');
  `,
];

export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.length;

/** Brings the schema to SQLITE_SCHEMA_VERSION in one transaction; refuses a file from a newer Tessera. */
export function migrate(db: DatabaseSync, file: string): void {
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
