/**
 * The store port: everything Tessera keeps, as small repository interfaces. Two implementations
 * (SQLite embedded, MongoDB) satisfy it, and one contract test suite holds both to it.
 *
 * Rules every implementation follows:
 * - a record whose `expiresAt` has passed is absent on every read (purging is only housekeeping);
 * - schema and indexes are created by `open()`, never on a request path;
 * - writes are single-statement or transactional: nothing is ever left half-written.
 */

import type { RateLimiterAbstract } from 'rate-limiter-flexible';

import type { AccessTokenSigningAlg } from '../config.ts';

/** The payload oidc-provider hands its adapter (see oidc-provider's example/my_adapter.js). */
export interface OidcPayload {
  [key: string]: unknown;
  jti?: string;
  uid?: string;
  userCode?: string;
  grantId?: string;
  consumed?: number;
}

/**
 * The expiring-record store: oidc-provider's models (Session, Interaction, AuthorizationCode,
 * RefreshToken, Grant, ...) keyed by model name and id, each record with its own lifetime.
 */
export interface ExpiringRecordStore {
  upsert(model: string, id: string, payload: OidcPayload, expiresInSeconds?: number): Promise<void>;
  find(model: string, id: string): Promise<OidcPayload | undefined>;
  findByUid(model: string, uid: string): Promise<OidcPayload | undefined>;
  findByUserCode(model: string, userCode: string): Promise<OidcPayload | undefined>;
  /**
   * Marks the record consumed (epoch seconds) unless it already is; the first consumption time is kept.
   * True only for the one call that consumed it (an atomic compare-and-set, across processes too):
   * false when it was consumed already, is unknown or has expired. Single use rests on this answer.
   */
  consume(model: string, id: string): Promise<boolean>;
  /**
   * Atomically records `successor` as the record's successor (a rotated refresh token's
   * replacement) and returns the one recorded before, if any: of concurrent callers each gets a
   * different previous value, so exactly one successor stays recorded.
   */
  swapSuccessor(model: string, id: string, successor: string): Promise<string | undefined>;
  destroy(model: string, id: string): Promise<void>;
  /** Removes every record of this model issued under the grant. */
  revokeByGrantId(model: string, grantId: string): Promise<void>;
  /** Every live record of this model whose payload has this `accountId`: `Session`, `Grant`, `EmailVerification` or `PasswordReset` only. */
  findByAccountId(model: string, accountId: string): Promise<Array<{ id: string; payload: OidcPayload }>>;
  /** Atomically reads and deletes a live record: single-use tokens go through here, so only one caller gets it. */
  take(model: string, id: string): Promise<OidcPayload | undefined>;
}

/** The former name of ExpiringRecordStore, kept while branches written against it land. */
export type OidcStore = ExpiringRecordStore;

/** Options of a store-backed rate limiter (rate-limiter-flexible semantics). */
export interface RateLimiterOptions {
  /** Separates the counters of different limits, e.g. `signin:ip`. */
  keyPrefix: string;
  /** How many actions a key may take per window. */
  points: number;
  /** Window length in seconds. */
  duration: number;
  /** Seconds a key stays blocked once it went over; defaults to the rest of the window. */
  blockDuration?: number;
}

export interface Account {
  /** Opaque, stable subject identifier. */
  sub: string;
  /** Normalised (trimmed, NFC, lower-cased) email; unique. */
  email: string;
  emailVerified: boolean;
  /**
   * Absent for an account that signs in another way (a passkey; later an upstream provider or an
   * email link): no password signs in to it, and the account page offers to set one.
   * argon2id for passwords set here; an imported one keeps its old algorithm until its first sign-in.
   */
  passwordHash?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
  disabled: boolean;
  /** Authorization roles (e.g. `admin`), released by the `roles` scope. */
  roles: string[];
  /** Consecutive failed sign-ins since the last success. */
  failedSignIns: number;
  /** While in the future, sign-in is refused (without saying so). */
  lockedUntil?: Date;
  /** Consecutive lockouts since the last successful sign-in; each lasts longer than the one before. */
  lockouts: number;
  /** TOTP second factor (RFC 6238); `confirmedAt` unset while enrolment waits for a first code. */
  totp?: TotpFactor;
  /** Hashes of the unused recovery codes. */
  recoveryCodes: string[];
  passkeys: Passkey[];
  /** One-time codes by email as a second factor. */
  emailOtp: boolean;
  /** The account's id in the system it was imported from (unique when set). */
  externalId?: string;
  /** Set by an import: a digest of the fields it wrote (domain/user-import.ts), so a re-run can tell whether anyone changed them since. */
  importDigest?: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface TotpFactor {
  /** The shared secret, encrypted like private keys (see domain/keys.ts). */
  encryptedSecret: string;
  confirmedAt?: Date;
  /** The last accepted time step: a code of that step or earlier is a replay. */
  lastStep: number;
}

/** A WebAuthn credential (passkey). Binary values are base64url. */
export interface Passkey {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports?: string[];
  name: string;
  createdAt: Date;
  lastUsedAt?: Date;
}

/** What registration must give; everything else starts empty. */
export type NewAccount = Pick<Account, 'sub' | 'email' | 'emailVerified' | 'passwordHash' | 'name' | 'givenName' | 'familyName' | 'disabled'> & Partial<Pick<Account, 'roles'>>;

/** Account fields update() may set (so nothing else, such as sub, email or createdAt, slips in through a cast). */
export const MUTABLE_ACCOUNT_FIELDS = ['passwordHash', 'disabled', 'emailVerified', 'roles', 'failedSignIns', 'lockouts', 'recoveryCodes', 'passkeys', 'emailOtp'] as const;
/** Optional account fields update() may also clear with `null`; every other field refuses null rather than guess what it would mean. */
export const CLEARABLE_ACCOUNT_FIELDS = ['name', 'givenName', 'familyName', 'lockedUntil', 'totp'] as const;
type MutableAccountField = typeof MUTABLE_ACCOUNT_FIELDS[number];
export type ClearableAccountField = typeof CLEARABLE_ACCOUNT_FIELDS[number];

export type AccountChanges = { [K in MutableAccountField]?: Account[K] } & { [K in ClearableAccountField]?: Account[K] | null };

export type AccountStatus = 'active' | 'disabled' | 'locked';

/** What accounts.search() looks for. Emails are compared as stored: callers normalise (lower-case, NFC) first. */
export interface AccountSearch {
  /** The start of the email; served by the email index, and the page is then in email order. */
  emailPrefix?: string;
  /** Part of the email or of the name (full, given or family), anywhere in it, case-insensitive. */
  query?: string;
  /** Only holders of this role. */
  role?: string;
  /** Disabled; locked (not disabled, lockedUntil after `at`); active (neither). */
  status?: AccountStatus;
  /** When `status` is judged; the store's clock when absent. */
  at?: Date;
  /** At most this many accounts (0 gives none). */
  limit: number;
  /** The `next` of the previous page of the same search. */
  cursor?: string;
}

export interface AccountPage {
  accounts: Account[];
  /** Where the next page starts; absent on the last page. */
  next?: string;
}

/** What an import writes into an account: the record's fields and the digest of them. */
export interface ImportedAccountFields {
  email: string;
  emailVerified: boolean;
  /** Absent: the account has no password. */
  passwordHash?: string;
  roles: string[];
  name?: string;
  givenName?: string;
  familyName?: string;
  externalId?: string;
  importDigest: string;
}

/**
 * One account of an import: a new account, or an update of one whose `updatedAt` is still the one
 * the import read (so a change made in between wins over the import).
 */
export type AccountImportWrite =
  | { kind: 'create'; sub: string; createdAt: Date; fields: ImportedAccountFields }
  | { kind: 'update'; sub: string; expectedUpdatedAt: Date; fields: ImportedAccountFields };

export interface AccountRepository {
  /** Throws AppError ERR_EMAIL_TAKEN when the email is already registered. */
  create(account: NewAccount): Promise<Account>;
  findBySub(sub: string): Promise<Account | undefined>;
  findByEmail(email: string): Promise<Account | undefined>;
  findByExternalId(externalId: string): Promise<Account | undefined>;
  /**
   * Writes a batch of an import in one transaction (SQLite) or one document write per account
   * (MongoDB): each account is whole or absent, never half-written. For each write, whether it was
   * made: false when the email or external id was taken, or the account changed, since it was read.
   */
  importAccounts(writes: readonly AccountImportWrite[]): Promise<boolean[]>;
  /** Changes the given fields; returns false when there is no such account. */
  update(sub: string, changes: AccountChanges): Promise<boolean>;
  list(options?: { limit?: number; offset?: number }): Promise<Account[]>;
  /**
   * One page of the accounts matching every given filter, through an index: by email prefix in
   * email order, otherwise oldest first. `next` is there when more may follow; pass it back as
   * `cursor` (a cursor that is not one throws AppError ERR_INVALID_INPUT).
   */
  search(search: AccountSearch): Promise<AccountPage>;
  /**
   * How many accounts there are, or (with `lockedAt`) how many are locked at that instant and not
   * disabled. Cheap at any size, for the console's overview: the table's count (SQLite), the
   * collection's estimate (MongoDB), and the lockout index for locked ones.
   */
  count(filter?: { lockedAt?: Date }): Promise<number>;
  /**
   * Counts a sign-in attempt before its password is checked, in one atomic step: unless the account
   * is locked at `now`, adds one to failedSignIns. Answers the count, at least this attempt's own
   * number (SQLite answers exactly that; MongoDB reads it after its atomic increment, so an attempt
   * counted meanwhile may show too), and the lock if one is on (undefined when there is no such
   * account). So of concurrent attempts at most `n` see a count of `n` or less.
   */
  countSignInAttempt(sub: string, now: Date): Promise<{ attempts: number; lockedUntil?: Date } | undefined>;
  /**
   * Locks the account until `lockedUntil` (lockouts + 1, failedSignIns back to 0) only if failedSignIns
   * is still at least `threshold`: a success in between (which resets the count) wins. True when it locked.
   */
  lockAfterFailures(sub: string, threshold: number, lockedUntil: Date): Promise<boolean>;
  /**
   * Records a successful sign-in (failedSignIns, lockouts and the lock cleared, together with `changes`)
   * only if, now that its password has been checked, failedSignIns is still at most `threshold` and the
   * account is not locked at `now`: attempts counted while this one was being checked (a burst) or a lock
   * they set win, and the success is refused. True when it was recorded.
   */
  acceptSignIn(sub: string, threshold: number, now: Date, changes?: AccountChanges): Promise<boolean>;
  /**
   * Sets the sign counter and last use of one passkey, only if the account still has it: a sign-in in
   * flight never writes back a passkey list that was changed meanwhile. False when the passkey is gone.
   */
  recordPasskeyUse(sub: string, credentialId: string, counter: number, usedAt: Date): Promise<boolean>;
  /** Atomically removes one recovery code hash; true only for the one caller that removed it. */
  consumeRecoveryCode(sub: string, codeHash: string): Promise<boolean>;
  /** Atomically sets totp.lastStep to `step` if it is greater; false (a replay) otherwise or without TOTP. */
  advanceTotpStep(sub: string, step: number): Promise<boolean>;
}

/** A client as kept in the store: oidc-provider client metadata (snake_case), secret already hashed. */
export interface StoredClient {
  clientId: string;
  metadata: Record<string, unknown>;
  createdAt: Date;
}

/** Every write (create, update, delete) bumps the `clients` revision. */
export interface ClientRepository {
  /** Throws AppError ERR_CLIENT_EXISTS when the id is taken. */
  create(client: Omit<StoredClient, 'createdAt'>): Promise<StoredClient>;
  find(clientId: string): Promise<StoredClient | undefined>;
  /** Replaces the metadata; returns false when there is no such client. */
  update(clientId: string, metadata: Record<string, unknown>): Promise<boolean>;
  list(): Promise<StoredClient[]>;
  /** Returns false when there was no such client. */
  delete(clientId: string): Promise<boolean>;
}

/** A resource server (API) that access tokens are issued for (RFC 8707 resource indicator = audience). */
export interface ResourceServerRecord {
  /** The resource indicator: an absolute URI without fragment; also the `aud` of its tokens. */
  audience: string;
  name?: string;
  scopes: string[];
  /** `jwt` (RFC 9068, validated offline with the JWKS, never stored) or `opaque` (stored, introspected). */
  format: 'jwt' | 'opaque';
  /** Access token lifetime in seconds. */
  ttlSeconds: number;
  /** Scopes limited to holders of one of the listed roles (absent: no scope is limited). */
  scopeRoles?: Record<string, string[]>;
  /** The only clients that may ask for it in the code flow (absent: any client, with the person's consent). */
  clients?: string[];
  /** The JWS algorithm of its JWT access tokens (absent: RS256, the default every validator supports). */
  signingAlg?: AccessTokenSigningAlg;
  createdAt: Date;
}

export type { AccessTokenSigningAlg } from '../config.ts';

/** Every write (create, delete) bumps the `resources` revision. */
export interface ResourceRepository {
  /** Throws AppError ERR_RESOURCE_EXISTS (409) when the audience is taken. */
  create(resource: Omit<ResourceServerRecord, 'createdAt'>): Promise<ResourceServerRecord>;
  find(audience: string): Promise<ResourceServerRecord | undefined>;
  list(): Promise<ResourceServerRecord[]>;
  /** Returns false when there was no such resource. */
  delete(audience: string): Promise<boolean>;
}

export type KeyUse = 'sig' | 'cookie';

/** A key as kept in the store. The private part is encrypted (see domain/keys.ts); `publicJwk` is absent for cookie keys. */
export interface StoredKey {
  kid: string;
  use: KeyUse;
  /** JWS algorithm family this key signs with (RS256, ES256, EdDSA); empty for cookie keys. */
  alg: string;
  publicJwk?: Record<string, unknown>;
  encryptedPrivate: string;
  createdAt: Date;
  /** When signing switched away from this key; undefined while it is current. */
  retiredAt?: Date;
  /** When the key leaves the JWKS: after every token it signed has expired. */
  expiresAt?: Date;
}

export interface KeyRepository {
  /** Every key that has not expired, oldest first. */
  list(): Promise<StoredKey[]>;
  /**
   * Atomically retires the current keys whose `use` appears among `add` (sets retiredAt/expiresAt)
   * and inserts `add`. Used both for first-start generation and for rotation, so two processes
   * never leave two current keys. Bumps the `keys` revision.
   */
  rotate(add: StoredKey[], retire: { retiredAt: Date; expiresAt: Date }): Promise<void>;
}

/**
 * Revisions let every process notice changes other processes made (the CLI, another instance):
 * a write bumps the counter, readers poll it and drop their caches when it moves.
 */
export type RevisionName = 'clients' | 'keys' | 'resources' | 'upstreams';

export interface RevisionRepository {
  get(name: RevisionName): Promise<number>;
  bump(name: RevisionName): Promise<number>;
}

/** A security event as kept in the audit trail (see domain/audit.ts); never holds a secret. */
export interface AuditRecord {
  /** Unique; breaks ties between events of the same millisecond. */
  id: string;
  /** A SecurityEventType (domain/events.ts). */
  type: string;
  at: Date;
  sub?: string;
  clientId?: string;
  ip?: string;
  requestId?: string;
  details?: Record<string, unknown>;
  /** The end of the retention period: absent on every read from then on. */
  expiresAt: Date;
}

export interface AuditQuery {
  sub?: string;
  clientId?: string;
  /** Any of these types. */
  types?: string[];
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
  /** Only events strictly older than this position (at, then id), for paging. */
  before?: { at: Date; id: string };
  limit: number;
}

export interface AuditRepository {
  /** Stores the records in one write (a transaction, or one bulk write); a record whose id is already stored is left as it is, so a retried batch is harmless. */
  append(records: readonly AuditRecord[]): Promise<void>;
  /** Live records matching every given filter, newest first (at descending, then id descending). */
  query(query: AuditQuery): Promise<AuditRecord[]>;
}

/**
 * An upstream identity provider (Google, GitHub, another OpenID provider) as kept in the store.
 * `settings` is the domain's validated shape (domain/upstreams.ts) as JSON; the client secret is
 * sealed with a key derived from TESSERA_SECRET, bound to the upstream's id.
 */
export interface StoredUpstream {
  id: string;
  settings: Record<string, unknown>;
  encryptedClientSecret: string;
  createdAt: Date;
}

/** Every write (create, delete) bumps the `upstreams` revision. */
export interface UpstreamRepository {
  /** Throws AppError ERR_UPSTREAM_INVALID (409) when the id is taken. */
  create(upstream: Omit<StoredUpstream, 'createdAt'>): Promise<StoredUpstream>;
  find(id: string): Promise<StoredUpstream | undefined>;
  list(): Promise<StoredUpstream[]>;
  /** Returns false when there was no such upstream. */
  delete(id: string): Promise<boolean>;
}

/**
 * A person's identity at an upstream provider, linked to one Tessera account. Keyed by
 * (upstream id, the upstream's `sub`), never by email: an address proves nothing about who holds it.
 */
export interface FederatedIdentity {
  upstreamId: string;
  /** The upstream's subject identifier (its `sub`, or GitHub's numeric user id). */
  subject: string;
  accountSub: string;
  /** The address the upstream gave when the identity was linked, for people to recognise it. */
  email?: string;
  createdAt: Date;
}

export interface IdentityRepository {
  /** Throws AppError ERR_IDENTITY_TAKEN (409) when (upstreamId, subject) is already linked. */
  create(identity: FederatedIdentity): Promise<FederatedIdentity>;
  find(upstreamId: string, subject: string): Promise<FederatedIdentity | undefined>;
  /** The identities of one account, oldest first. */
  listByAccount(accountSub: string): Promise<FederatedIdentity[]>;
  /** Removes the identity only if it belongs to that account; false otherwise. */
  delete(upstreamId: string, subject: string, accountSub: string): Promise<boolean>;
}

export interface Store {
  readonly kind: 'sqlite' | 'mongodb';
  /** oidc-provider's records (the adapter's name for them). */
  readonly oidc: ExpiringRecordStore;
  readonly accounts: AccountRepository;
  readonly clients: ClientRepository;
  readonly resources: ResourceRepository;
  readonly upstreams: UpstreamRepository;
  readonly identities: IdentityRepository;
  readonly keys: KeyRepository;
  readonly revisions: RevisionRepository;
  readonly audit: AuditRepository;
  /**
   * A rate limiter counting in the store, so limits hold across instances. Returns a
   * rate-limiter-flexible limiter (consume/get/delete/penalty) whatever the backend.
   */
  rateLimiter(options: RateLimiterOptions): RateLimiterAbstract;
  /** Cheap round trip used by readiness checks; throws when the store is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
