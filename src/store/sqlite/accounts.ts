/**
 * Accounts in the `accounts` table. TOTP is kept as columns (so advancing its step is one
 * conditional UPDATE); roles, recovery codes and passkeys as JSON arrays.
 */
import type { StatementSync } from 'node:sqlite';

import { decodeAccountCursor, encodeAccountCursor, prefixUpperBound, searchOrder } from '../account-search.ts';
import type { Account, AccountChanges, AccountPage, AccountRepository, AccountSearch, ClearableAccountField, ImportedAccountFields, Passkey } from '../port.ts';
import { emailTakenError, storeUnavailableError } from '../store-errors.ts';
import { forgettingWrites, optionalString, type SqliteDatabase } from './database.ts';
import type { GroupCommit } from './group-commit.ts';
import { isUniqueViolation } from './sqlite-errors.ts';

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

const ACCOUNT_COLUMNS = `sub, email, email_verified, password_hash, name, given_name, family_name, disabled, roles, failed_sign_ins,
  locked_until, lockouts, totp_encrypted_secret, totp_confirmed_at, totp_last_step, recovery_codes, passkeys, email_otp, external_id, import_digest,
  created_at, updated_at`;
/** Every column update() may write; each takes a `:set_<column>` flag and a `:<column>` value. */
const UPDATABLE_ACCOUNT_COLUMNS: readonly AccountColumn[] = [
  'password_hash', 'disabled', 'email_verified', 'name', 'given_name', 'family_name', 'roles', 'failed_sign_ins',
  'locked_until', 'lockouts', 'totp_encrypted_secret', 'totp_confirmed_at', 'totp_last_step', 'recovery_codes', 'passkeys', 'email_otp',
];

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

/** Accounts kept by the read cache (a row is about 1 KB). */
const ACCOUNTS_CACHED = 512;

/**
 * `commits`: the writes of a sign-in (the attempt's count, the success, a lock) and account updates
 * share the group commit with oidc-provider's writes of the same turn, one fsync for all of them.
 */
export function sqliteAccounts(database: SqliteDatabase, commits: GroupCommit): AccountRepository {
  const { clock, transaction } = database;
  // Accounts by sub: read by every userinfo call and token issue. Any write to accounts empties it.
  const bySub = database.caches.create<AccountRow>(ACCOUNTS_CACHED);
  const prepare = (sql: string): StatementSync => forgettingWrites(database.db.prepare(sql), bySub);
  const statements = {
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
    // updateAccount with the check of acceptSignIn: the count and the lock are read under the same write lock.
    acceptSignIn: prepare(`
      UPDATE accounts SET
        ${UPDATABLE_ACCOUNT_COLUMNS.map((column) => `${column} = CASE WHEN :set_${column} = 1 THEN :${column} ELSE ${column} END`).join(',\n        ')},
        updated_at = :updated_at
      WHERE sub = :sub AND failed_sign_ins <= :threshold AND (locked_until IS NULL OR locked_until <= :now)`),
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
    countAccounts: prepare('SELECT COUNT(*) AS n FROM accounts'),
    // disabled = 0 after the range: the partial index on locked_until finds the few candidates.
    countLocked: prepare('SELECT COUNT(*) AS n FROM accounts WHERE locked_until > :now AND disabled = 0'),
    listAccounts: prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, sub LIMIT :limit OFFSET :offset`),
  };

  // Each combination of filters gets its own statement (prepared once), as the audit trail's do,
  // so the planner picks the index that fits: the email index for a prefix, (created_at, sub) else.
  const searches = new Map<string, StatementSync>();

  function search(query: AccountSearch): AccountPage {
    const limit = Math.max(0, Math.floor(query.limit));
    if (limit === 0) return { accounts: [] };
    const order = searchOrder(query);
    const after = decodeAccountCursor(query);
    const conditions: string[] = [];
    // One more than asked, to know whether there is a next page.
    const parameters: Record<string, string | number> = { limit: limit + 1 };
    if (query.emailPrefix) {
      // A range on the email column (BINARY collation) is what its unique index serves; LIKE 'x%'
      // would only use it with case_sensitive_like, and would need its wildcards escaped.
      conditions.push('email >= :prefix');
      parameters.prefix = String(query.emailPrefix);
      const bound = prefixUpperBound(parameters.prefix);
      if (bound !== undefined) {
        conditions.push('email < :prefix_bound');
        parameters.prefix_bound = bound;
      }
    }
    if (query.query) {
      // instr, not LIKE: no wildcards to escape in what an operator typed. Emails are stored lower-case;
      // names are compared lower-cased too (SQLite's lower() folds ASCII only, as an operator expects of it).
      conditions.push(`(instr(email, :query) > 0 OR instr(lower(coalesce(name, '') || ' ' || coalesce(given_name, '') || ' ' || coalesce(family_name, '')), :query) > 0)`);
      parameters.query = String(query.query).toLowerCase();
    }
    if (query.role !== undefined) {
      conditions.push('EXISTS (SELECT 1 FROM json_each(accounts.roles) WHERE value = :role)');
      parameters.role = String(query.role);
    }
    if (query.status !== undefined) {
      if (query.status !== 'disabled') parameters.now = (query.at ?? new Date(clock())).getTime();
      conditions.push({
        disabled: 'disabled = 1',
        locked: 'disabled = 0 AND locked_until > :now',
        active: 'disabled = 0 AND (locked_until IS NULL OR locked_until <= :now)',
      }[query.status]);
    }
    if (after?.order === 'email') {
      conditions.push('email > :after_email');
      parameters.after_email = after.email;
    } else if (after?.order === 'created') {
      conditions.push('(created_at, sub) > (:after_at, :after_sub)');
      parameters.after_at = after.createdAt;
      parameters.after_sub = after.sub;
    }
    const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
    const sql = `SELECT ${ACCOUNT_COLUMNS} FROM accounts ${where} ORDER BY ${order === 'email' ? 'email' : 'created_at, sub'} LIMIT :limit`;
    let statement = searches.get(sql);
    if (!statement) {
      statement = database.db.prepare(sql);
      searches.set(sql, statement);
    }
    const rows = statement.all(parameters) as unknown as AccountRow[];
    const accounts = rows.slice(0, limit).map(toAccount);
    if (rows.length <= limit) return { accounts };
    const last = accounts[accounts.length - 1]!;
    const next = order === 'email'
      ? encodeAccountCursor({ order, email: last.email })
      : encodeAccountCursor({ order, createdAt: last.createdAt.getTime(), sub: last.sub });
    return { accounts, next };
  }

  return {
    async search(query) {
      return search(query);
    },
    async count(filter = {}) {
      const row = filter.lockedAt
        ? statements.countLocked.get({ now: filter.lockedAt.getTime() })
        : statements.countAccounts.get();
      return Number((row as { n: number }).n);
    },
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
      const key = String(sub);
      let row = bySub.get(key);
      if (row === undefined) {
        row = (statements.findAccountBySub.get({ sub: key }) as AccountRow | undefined) ?? null;
        bySub.set(key, row);
      }
      return row === null ? undefined : toAccount(row);
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
      const parameters = { ...accountUpdateParameters(changes), sub: String(sub), updated_at: clock() };
      return commits.write(() => Number(statements.updateAccount.run(parameters).changes) > 0);
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
      const parameters = { sub: String(sub), now: now.getTime(), updated_at: clock() };
      const row = await commits.write(() => statements.countSignInAttempt.get(parameters) as { failed_sign_ins: number; locked_until: number | null } | undefined);
      if (row === undefined) return undefined;
      const locked = row.locked_until !== null && row.locked_until > now.getTime();
      return locked ? { attempts: row.failed_sign_ins, lockedUntil: new Date(row.locked_until!) } : { attempts: row.failed_sign_ins };
    },
    async acceptSignIn(sub, threshold, now, changes = {}) {
      const parameters = { ...accountUpdateParameters({ ...changes, failedSignIns: 0, lockouts: 0, lockedUntil: null }), sub: String(sub), threshold, now: now.getTime(), updated_at: clock() };
      return commits.write(() => Number(statements.acceptSignIn.run(parameters).changes) > 0);
    },
    async lockAfterFailures(sub, threshold, lockedUntil) {
      const parameters = { sub: String(sub), threshold, locked_until: lockedUntil.getTime(), updated_at: clock() };
      return commits.write(() => Number(statements.lockAfterFailures.run(parameters).changes) > 0);
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
}
