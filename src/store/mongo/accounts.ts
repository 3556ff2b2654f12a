/**
 * Accounts in the `accounts` collection, `_id` the sub. Counters and lists change by compare-and-set
 * on the value read, not by $inc/$pull/positional updates: the emulator the tests run on lacks some
 * of them, and others it applies atomically but answers from a separate read.
 */
import { Schema, type Connection, type Model } from 'mongoose';

import { decodeAccountCursor, encodeAccountCursor, prefixUpperBound, searchOrder } from '../account-search.ts';
import type { Account, AccountChanges, AccountPage, AccountRepository, AccountSearch, ImportedAccountFields, Passkey, TotpFactor } from '../port.ts';
import { CLEARABLE_ACCOUNT_FIELDS, MUTABLE_ACCOUNT_FIELDS } from '../port.ts';
import { emailTakenError, storeUnavailableError } from '../store-errors.ts';
import { COMPARE_AND_SET_ATTEMPTS, type MongoDatabase } from './database.ts';
import { isDuplicateKey } from './mongo-errors.ts';
import { schemaOptions } from './schema-options.ts';

export interface TotpDocument {
  encryptedSecret: string;
  confirmedAt?: Date;
  lastStep: number;
}

export interface PasskeyDocument {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports?: string[];
  name: string;
  createdAt: Date;
  lastUsedAt?: Date;
}

/**
 * The fields after `disabled` came with account security; documents written before may lack them,
 * so they are optional here and toAccount() supplies the empty defaults.
 */
export interface AccountDocument {
  /** The account's `sub`. */
  _id: string;
  email: string;
  emailVerified: boolean;
  /** Absent for an account without a password. */
  passwordHash?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
  disabled: boolean;
  roles?: string[];
  failedSignIns?: number;
  lockedUntil?: Date;
  lockouts?: number;
  totp?: TotpDocument;
  recoveryCodes?: string[];
  passkeys?: PasskeyDocument[];
  emailOtp?: boolean;
  externalId?: string;
  importDigest?: string;
  createdAt: Date;
  updatedAt: Date;
}

const totpSchema = new Schema<TotpDocument>(
  {
    encryptedSecret: { type: String, required: true },
    confirmedAt: { type: Date },
    lastStep: { type: Number, required: true },
  },
  { _id: false, versionKey: false, strict: 'throw' },
);

const passkeySchema = new Schema<PasskeyDocument>(
  {
    credentialId: { type: String, required: true },
    publicKey: { type: String, required: true },
    counter: { type: Number, required: true },
    // No default: an absent list stays absent instead of becoming [].
    transports: { type: [String], default: undefined },
    name: { type: String, required: true },
    createdAt: { type: Date, required: true },
    lastUsedAt: { type: Date },
  },
  { _id: false, versionKey: false, strict: 'throw' },
);

const accountSchema = new Schema<AccountDocument>(
  {
    _id: { type: String, required: true },
    email: { type: String, required: true },
    emailVerified: { type: Boolean, required: true },
    passwordHash: { type: String },
    name: { type: String },
    givenName: { type: String },
    familyName: { type: String },
    disabled: { type: Boolean, required: true },
    roles: { type: [String], default: undefined },
    failedSignIns: { type: Number },
    lockedUntil: { type: Date },
    lockouts: { type: Number },
    totp: { type: totpSchema },
    recoveryCodes: { type: [String], default: undefined },
    passkeys: { type: [passkeySchema], default: undefined },
    emailOtp: { type: Boolean },
    externalId: { type: String },
    importDigest: { type: String },
    createdAt: { type: Date, required: true },
    updatedAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'accounts' },
);
// Uniqueness lives in the index, so two concurrent registrations cannot both win.
accountSchema.index({ email: 1 }, { name: 'email_unique', unique: true });
accountSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });
// Locked accounts are few: the overview counts them and status=locked searches find them through this.
accountSchema.index({ lockedUntil: 1 }, { name: 'lockedUntil', sparse: true });
accountSchema.index({ externalId: 1 }, { name: 'externalId_unique', unique: true, partialFilterExpression: { externalId: { $exists: true } } });

export function accountModel(connection: Connection): Model<AccountDocument> {
  return connection.model<AccountDocument>('Account', accountSchema);
}

const UPDATABLE_ACCOUNT_FIELDS: ReadonlyArray<keyof AccountChanges> = [...MUTABLE_ACCOUNT_FIELDS, ...CLEARABLE_ACCOUNT_FIELDS];
const CLEARABLE = new Set<keyof AccountChanges>(CLEARABLE_ACCOUNT_FIELDS);

/** Turns port changes into $set/$unset: undefined leaves a field alone, null removes an optional one. */
function accountUpdate(changes: AccountChanges): { set: Record<string, unknown>; unset: Record<string, ''> } {
  const set: Record<string, unknown> = {};
  const unset: Record<string, ''> = {};
  for (const field of UPDATABLE_ACCOUNT_FIELDS) {
    const value: unknown = changes[field];
    if (value === undefined) continue;
    if (value === null) {
      if (!CLEARABLE.has(field)) throw new TypeError(`The account field ${field} cannot be cleared.`);
      unset[field] = '';
      continue;
    }
    set[field] = accountFieldValue(field, value);
  }
  return { set, unset };
}

function accountFieldValue(field: keyof AccountChanges, value: unknown): unknown {
  switch (field) {
    case 'passwordHash':
    case 'name':
    case 'givenName':
    case 'familyName':
      return String(value);
    case 'roles':
    case 'recoveryCodes':
      return (value as string[]).map(String);
    case 'totp':
      return toTotpDocument(value as TotpFactor);
    case 'passkeys':
      return (value as Passkey[]).map(toPasskeyDocument);
    default:
      return value;
  }
}

function toTotpDocument(totp: TotpFactor): TotpDocument {
  const doc: TotpDocument = { encryptedSecret: String(totp.encryptedSecret), lastStep: totp.lastStep };
  if (totp.confirmedAt != null) doc.confirmedAt = totp.confirmedAt;
  return doc;
}

function toPasskeyDocument(passkey: Passkey): PasskeyDocument {
  const doc: PasskeyDocument = {
    credentialId: String(passkey.credentialId),
    publicKey: String(passkey.publicKey),
    counter: passkey.counter,
    name: String(passkey.name),
    createdAt: passkey.createdAt,
  };
  if (passkey.transports != null) doc.transports = passkey.transports.map(String);
  if (passkey.lastUsedAt != null) doc.lastUsedAt = passkey.lastUsedAt;
  return doc;
}

/** Documents from before account security lack its fields: they read as the empty defaults. */
function toAccount(doc: AccountDocument): Account {
  const account: Account = {
    sub: doc._id,
    email: doc.email,
    emailVerified: doc.emailVerified,
    disabled: doc.disabled,
    roles: [...(doc.roles ?? [])],
    failedSignIns: doc.failedSignIns ?? 0,
    lockouts: doc.lockouts ?? 0,
    recoveryCodes: [...(doc.recoveryCodes ?? [])],
    passkeys: (doc.passkeys ?? []).map(toPasskey),
    emailOtp: doc.emailOtp ?? false,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
  if (doc.passwordHash != null) account.passwordHash = doc.passwordHash;
  if (doc.name != null) account.name = doc.name;
  if (doc.givenName != null) account.givenName = doc.givenName;
  if (doc.familyName != null) account.familyName = doc.familyName;
  if (doc.lockedUntil != null) account.lockedUntil = doc.lockedUntil;
  if (doc.externalId != null) account.externalId = doc.externalId;
  if (doc.importDigest != null) account.importDigest = doc.importDigest;
  if (doc.totp != null) {
    const totp: TotpFactor = { encryptedSecret: doc.totp.encryptedSecret, lastStep: doc.totp.lastStep };
    if (doc.totp.confirmedAt != null) totp.confirmedAt = doc.totp.confirmedAt;
    account.totp = totp;
  }
  return account;
}

function toPasskey(doc: PasskeyDocument): Passkey {
  const passkey: Passkey = {
    credentialId: doc.credentialId,
    publicKey: doc.publicKey,
    counter: doc.counter,
    name: doc.name,
    createdAt: doc.createdAt,
  };
  if (doc.transports != null) passkey.transports = [...doc.transports];
  if (doc.lastUsedAt != null) passkey.lastUsedAt = doc.lastUsedAt;
  return passkey;
}

/** An import's fields as $set and $unset: an absent optional field is removed, as the record says. */
function importedFields(fields: ImportedAccountFields): { set: Record<string, unknown>; unset: Record<string, ''> } {
  const set: Record<string, unknown> = {
    email: String(fields.email),
    emailVerified: fields.emailVerified,
    roles: fields.roles.map(String),
    importDigest: String(fields.importDigest),
  };
  const unset: Record<string, ''> = {};
  for (const field of ['passwordHash', 'name', 'givenName', 'familyName', 'externalId'] as const) {
    const value = fields[field];
    if (value === undefined) unset[field] = '';
    else set[field] = String(value);
  }
  return { set, unset };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function mongoAccounts(database: MongoDatabase, Account: Model<AccountDocument>): AccountRepository {
  const { clock } = database;

  /**
   * Reads one account field, lets `decide` compute its new value, and writes it only if the field
   * still holds what was read; otherwise reads again. Of concurrent callers exactly one wins each
   * round, so every rerun follows someone else's successful write and the loop makes progress; the
   * bound only turns a pathological pile-up into an error. Undefined when there is no such account.
   */
  async function compareAndSet<F extends 'recoveryCodes' | 'passkeys', R>(
    sub: string,
    field: F,
    decide: (current: AccountDocument[F] | undefined) => { write?: NonNullable<AccountDocument[F]>; result: R },
  ): Promise<R | undefined> {
    for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
      const doc = (await Account.findOne({ _id: sub }, { [field]: 1 }).lean().exec()) as Pick<AccountDocument, F> | null;
      if (doc === null) return undefined;
      // Documents from before account security lack the field: `$eq: null` also matches a missing field.
      const current = (doc[field] ?? undefined) as AccountDocument[F] | undefined;
      const decision = decide(current);
      if (decision.write === undefined) return decision.result;
      const result = await Account.updateOne(
        { _id: sub, [field]: { $eq: current ?? null } },
        { $set: { [field]: decision.write, updatedAt: new Date(clock()) } },
      ).exec();
      if (result.modifiedCount > 0) return decision.result;
    }
    throw storeUnavailableError(`The account field ${field} kept changing under concurrent writes.`);
  }

  async function search(query: AccountSearch): Promise<AccountPage> {
    const limit = Math.max(0, Math.floor(query.limit));
    // MongoDB reads limit(0) as "no limit"; the port means none.
    if (limit === 0) return { accounts: [] };
    const order = searchOrder(query);
    const after = decodeAccountCursor(query);
    const conditions: Array<Record<string, unknown>> = [];
    if (query.emailPrefix) {
      // A range, which the email index serves on every server; the bound is computed, not a regex.
      const prefix = String(query.emailPrefix);
      const bound = prefixUpperBound(prefix);
      conditions.push({ email: bound === undefined ? { $gte: prefix } : { $gte: prefix, $lt: bound } });
    }
    if (query.query) {
      const part = escapeRegex(String(query.query).toLowerCase());
      conditions.push({ $or: [{ email: { $regex: part } }, ...(['name', 'givenName', 'familyName'] as const).map((field) => ({ [field]: { $regex: part, $options: 'i' } }))] });
    }
    if (query.role !== undefined) conditions.push({ roles: String(query.role) });
    if (query.status !== undefined) {
      const now = query.at ?? new Date(clock());
      conditions.push({
        disabled: { disabled: true },
        locked: { disabled: false, lockedUntil: { $gt: now } },
        active: { disabled: false, lockedUntil: { $not: { $gt: now } } },
      }[query.status]);
    }
    if (after?.order === 'email') conditions.push({ email: { $gt: after.email } });
    if (after?.order === 'created') {
      const at = new Date(after.createdAt);
      conditions.push({ $or: [{ createdAt: { $gt: at } }, { createdAt: at, _id: { $gt: after.sub } }] });
    }
    const filter = conditions.length === 0 ? {} : conditions.length === 1 ? conditions[0]! : { $and: conditions };
    const sort: Record<string, 1> = order === 'email' ? { email: 1 } : { createdAt: 1, _id: 1 };
    // One more than asked, to know whether there is a next page.
    const docs = await Account.find(filter).sort(sort).limit(limit + 1).lean().exec();
    const accounts = docs.slice(0, limit).map(toAccount);
    if (docs.length <= limit) return { accounts };
    const last = accounts[accounts.length - 1]!;
    const next = order === 'email'
      ? encodeAccountCursor({ order, email: last.email })
      : encodeAccountCursor({ order, createdAt: last.createdAt.getTime(), sub: last.sub });
    return { accounts, next };
  }

  return {
    search,
    async count(filter = {}) {
      // The collection's own count (metadata, no scan); exact enough for an overview.
      if (!filter.lockedAt) return Account.estimatedDocumentCount().exec();
      return Account.countDocuments({ lockedUntil: { $gt: filter.lockedAt }, disabled: false }).exec();
    },
    async create(input) {
      const now = new Date(clock());
      const doc: AccountDocument = {
        _id: String(input.sub),
        email: String(input.email),
        emailVerified: input.emailVerified,
        ...(input.passwordHash !== undefined && { passwordHash: String(input.passwordHash) }),
        disabled: input.disabled,
        roles: (input.roles ?? []).map(String),
        failedSignIns: 0,
        lockouts: 0,
        recoveryCodes: [],
        passkeys: [],
        emailOtp: false,
        createdAt: now,
        updatedAt: now,
      };
      if (input.name !== undefined) doc.name = String(input.name);
      if (input.givenName !== undefined) doc.givenName = String(input.givenName);
      if (input.familyName !== undefined) doc.familyName = String(input.familyName);
      try {
        await Account.insertMany([doc]);
      } catch (error) {
        if (isDuplicateKey(error, 'email')) throw emailTakenError(error);
        throw error;
      }
      return toAccount(doc);
    },
    async findBySub(sub) {
      const doc = await Account.findOne({ _id: String(sub) }).lean().exec();
      return doc === null ? undefined : toAccount(doc);
    },
    async findByEmail(email) {
      const doc = await Account.findOne({ email: String(email) }).lean().exec();
      return doc === null ? undefined : toAccount(doc);
    },
    async findByExternalId(externalId) {
      const doc = await Account.findOne({ externalId: String(externalId) }).lean().exec();
      return doc === null ? undefined : toAccount(doc);
    },
    async importAccounts(writes) {
      // One document per account: each write is atomic on its own, so a kill leaves each account whole or absent.
      const done: boolean[] = [];
      for (const write of writes) {
        const now = new Date(clock());
        try {
          if (write.kind === 'create') {
            const { fields } = write;
            const doc: AccountDocument = {
              _id: String(write.sub),
              email: String(fields.email),
              emailVerified: fields.emailVerified,
              disabled: false,
              roles: fields.roles.map(String),
              failedSignIns: 0,
              lockouts: 0,
              recoveryCodes: [],
              passkeys: [],
              emailOtp: false,
              importDigest: String(fields.importDigest),
              createdAt: write.createdAt,
              updatedAt: now,
            };
            if (fields.passwordHash !== undefined) doc.passwordHash = String(fields.passwordHash);
            if (fields.name !== undefined) doc.name = String(fields.name);
            if (fields.givenName !== undefined) doc.givenName = String(fields.givenName);
            if (fields.familyName !== undefined) doc.familyName = String(fields.familyName);
            if (fields.externalId !== undefined) doc.externalId = String(fields.externalId);
            await Account.insertMany([doc]);
            done.push(true);
          } else {
            const { set, unset } = importedFields(write.fields);
            const update = Object.keys(unset).length === 0 ? { $set: { ...set, updatedAt: now } } : { $set: { ...set, updatedAt: now }, $unset: unset };
            const result = await Account.updateOne({ _id: String(write.sub), updatedAt: write.expectedUpdatedAt }, update).exec();
            done.push(result.matchedCount > 0);
          }
        } catch (error) {
          if (isDuplicateKey(error, 'email') || isDuplicateKey(error, 'externalId')) done.push(false);
          else throw error;
        }
      }
      return done;
    },
    async update(sub, changes) {
      const { set, unset } = accountUpdate(changes);
      set.updatedAt = new Date(clock());
      const update = Object.keys(unset).length === 0 ? { $set: set } : { $set: set, $unset: unset };
      const result = await Account.updateOne({ _id: String(sub) }, update).exec();
      return result.matchedCount > 0;
    },
    async list(listOptions = {}) {
      // MongoDB reads limit(0) as "no limit"; the port means none.
      if (listOptions.limit === 0) return [];
      let query = Account.find({}).sort({ createdAt: 1, _id: 1 }).skip(listOptions.offset ?? 0);
      if (listOptions.limit !== undefined) query = query.limit(listOptions.limit);
      return (await query.lean().exec()).map(toAccount);
    },
    async countSignInAttempt(sub, now) {
      // One atomic $inc, then a read: not a compare-and-set loop, which under a burst of concurrent
      // attempts needs a round per attempt and outran the store deadline (503s). Not findOneAndUpdate
      // either: some servers (the emulator the tests run on) apply its $inc atomically but read the
      // returned document separately. The read may include attempts counted after this one; the
      // lockout only needs each attempt's count to be at least its own (see the port).
      const unlocked = { $or: [{ lockedUntil: null }, { lockedUntil: { $lte: now } }] };
      await Account.updateOne({ _id: String(sub), ...unlocked }, { $inc: { failedSignIns: 1 }, $set: { updatedAt: new Date(clock()) } }).exec();
      const doc = await Account.findOne({ _id: String(sub) }, { failedSignIns: 1, lockedUntil: 1 }).lean().exec();
      if (doc === null) return undefined;
      const attempts = doc.failedSignIns ?? 0;
      const lockedUntil = doc.lockedUntil ?? undefined;
      return lockedUntil && lockedUntil.getTime() > now.getTime() ? { attempts, lockedUntil } : { attempts };
    },
    async acceptSignIn(sub, threshold, now, changes = {}) {
      const { set, unset } = accountUpdate({ ...changes, failedSignIns: 0, lockouts: 0, lockedUntil: null });
      set.updatedAt = new Date(clock());
      const update = Object.keys(unset).length === 0 ? { $set: set } : { $set: set, $unset: unset };
      // One conditional write: the count and the lock are checked by the server as it writes.
      const result = await Account.updateOne({
        _id: String(sub),
        $and: [
          { $or: [{ failedSignIns: { $lte: threshold } }, { failedSignIns: null }] },
          { $or: [{ lockedUntil: null }, { lockedUntil: { $lte: now } }] },
        ],
      }, update).exec();
      return result.matchedCount > 0;
    },
    async lockAfterFailures(sub, threshold, lockedUntil) {
      const result = await Account.updateOne(
        { _id: String(sub), failedSignIns: { $gte: threshold } },
        { $set: { lockedUntil, failedSignIns: 0, updatedAt: new Date(clock()) }, $inc: { lockouts: 1 } },
      ).exec();
      return result.modifiedCount > 0;
    },
    async recordPasskeyUse(sub, credentialId, counter, usedAt) {
      // Compare-and-set on the whole list, not a positional `passkeys.$` update (the emulator lacks
      // it): a removal between the read and the write makes the write miss, and the rerun sees it gone.
      const id = String(credentialId);
      const used = await compareAndSet(String(sub), 'passkeys', (current = []) => current.some((passkey) => passkey.credentialId === id)
        ? { write: current.map((passkey) => (passkey.credentialId === id ? { ...passkey, counter, lastUsedAt: usedAt } : passkey)), result: true }
        : { result: false });
      return used ?? false;
    },
    async consumeRecoveryCode(sub, codeHash) {
      const hash = String(codeHash);
      // Not $pull, which not every server has (the emulator lacks it).
      const consumed = await compareAndSet(String(sub), 'recoveryCodes', (current = []) =>
        current.includes(hash) ? { write: current.filter((code) => code !== hash), result: true } : { result: false },
      );
      return consumed ?? false;
    },
    async advanceTotpStep(sub, step) {
      if (!Number.isFinite(step)) return false;
      const result = await Account.updateOne(
        { _id: String(sub), 'totp.lastStep': { $lt: step } },
        { $set: { 'totp.lastStep': step, updatedAt: new Date(clock()) } },
      ).exec();
      return result.modifiedCount > 0;
    },
  };
}
