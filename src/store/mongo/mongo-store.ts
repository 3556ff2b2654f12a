/**
 * The MongoDB store, on its own mongoose connection (no global mongoose state). Collections and
 * indexes are created here at open, never lazily on a request path.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import mongoose, { type ClientSession, type Connection } from 'mongoose';
import { RateLimiterMongo } from 'rate-limiter-flexible';

import type {
  Account,
  AccountChanges,
  AccountRepository,
  AuditRecord,
  AuditRepository,
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
  TotpFactor,
} from '../port.ts';
import { CLEARABLE_ACCOUNT_FIELDS, MUTABLE_ACCOUNT_FIELDS } from '../port.ts';
import { guardStore } from '../outage.ts';
import { clientIdTakenError, emailTakenError, resourceAudienceTakenError, storeUnavailableError } from '../store-errors.ts';
import {
  createModels,
  RATE_LIMITS_COLLECTION,
  type AccountDocument,
  type AuditEventDocument,
  type ClientDocument,
  type KeyDocument,
  type OidcRecordDocument,
  type PasskeyDocument,
  type ResourceDocument,
  type StoreModels,
  type TotpDocument,
} from './models.ts';
import { isMongoUnavailable } from './mongo-errors.ts';

export interface MongoStoreOptions {
  uri: string;
  serverSelectionTimeoutMS?: number;
  /**
   * Longest wait for one store call on a request path (default 3000 ms). Past it the call fails with
   * ERR_STORE_UNAVAILABLE, and the request with 503, even while the driver is still waiting for a
   * server that stopped answering (store/outage.ts).
   */
  operationTimeoutMS?: number;
  /**
   * Whether multi-document writes run in transactions. Left undefined, the deployment is asked
   * (replica sets and mongos have them, a standalone mongod does not); false forces the ordered
   * fallback, which the contract suite runs too.
   */
  transactions?: boolean;
  /** Epoch milliseconds. Tests inject a clock to observe expiry without sleeping. */
  clock?: () => number;
}

const REVISION_NAMES: readonly RevisionName[] = ['clients', 'keys', 'resources'];
/** Tessera's requests make single-document, indexed calls of a few milliseconds; 3 s means the store is gone. */
const DEFAULT_OPERATION_TIMEOUT_MS = 3_000;
/** A rotation takes milliseconds; the lease only bounds how long a crashed holder blocks the others. */
const LOCK_LEASE_MS = 10_000;
const LOCK_WAIT_MS = 15_000;
/** MongoServerError code for IllegalOperation, what a standalone mongod answers to a transaction. */
const ILLEGAL_OPERATION = 20;
/** MongoServerError code for WriteConflict: a concurrent transaction wrote the same document first. */
const WRITE_CONFLICT = 112;
/** Reruns after an unlabelled write conflict; each rerun sees the winner's write, so few are needed. */
const CONFLICT_RERUNS = 5;
/** Compare-and-set rounds on one account field; n concurrent writers need at most n (the rate limiters keep n small). */
const COMPARE_AND_SET_ATTEMPTS = 50;

export async function openMongoStore(options: MongoStoreOptions): Promise<Store> {
  const clock = options.clock ?? Date.now;
  const connection = mongoose.createConnection(options.uri, {
    autoCreate: false,
    autoIndex: false,
    // Fail fast instead of queueing operations while disconnected; the driver still retries server selection.
    bufferCommands: false,
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000,
    // A server that stops answering (a partition, a frozen host) is noticed in seconds, not the
    // defaults' 30 s and more: the monitor asks every 2 s and gives up after 3 s, then the pool is
    // cleared and waiting operations fail instead of hanging. Polling, not the streaming monitor,
    // whose awaited replies would hide a silent server for a whole heartbeat more.
    serverMonitoringMode: 'poll',
    heartbeatFrequencyMS: 2_000,
    connectTimeoutMS: 3_000,
    // Payloads are JSON-shaped; an undefined property must vanish as it does in JSON, not become null.
    ignoreUndefined: true,
    // An acknowledged write must survive a failover. MongoDB's implicit default is already majority
    // except with arbiters; a `w=` in the URI still wins.
    ...(/[?&]w=/i.test(options.uri) ? {} : { writeConcern: { w: 'majority' as const } }),
  });

  try {
    await connection.asPromise();
  } catch (error) {
    await connection.close().catch(() => undefined);
    // The URI may carry credentials, so it stays out of the message.
    throw storeUnavailableError('Cannot connect to MongoDB (check MONGODB_URI).', error);
  }

  const models = createModels(connection);
  let transactions: boolean;
  try {
    for (const model of Object.values(models)) await model.createIndexes();
    await seedRevisions(models);
    transactions = options.transactions ?? (await supportsTransactions(connection, models));
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw storeUnavailableError('Cannot prepare the MongoDB collections and indexes.', error);
  }

  // The rotation lock waits for other rotations on its own bounded schedule (LOCK_WAIT_MS).
  return guardStore(buildStore(connection, models, { clock, transactions }), {
    isUnavailable: isMongoUnavailable,
    deadlineMs: options.operationTimeoutMS ?? DEFAULT_OPERATION_TIMEOUT_MS,
    unbounded: ['keys.rotate'],
  });
}

function buildStore(connection: Connection, models: StoreModels, settings: { clock: () => number; transactions: boolean }): Store {
  const { OidcRecord, Account, Client, Resource, Key, Revision, Lock, AuditEvent } = models;
  const { clock, transactions } = settings;

  /** Filter for "not expired": documents without expiresAt never expire. */
  const live = () => ({ expiresAt: { $not: { $lte: new Date(clock()) } } });
  const oidcId = (model: string, id: string) => `${String(model)}:${String(id)}`;

  /**
   * Runs `work` in a transaction when the deployment has them, otherwise as the ordered writes it
   * contains. `work` may run more than once (the driver retries transient transaction errors).
   */
  async function atomically(work: (session: ClientSession | undefined) => Promise<void>): Promise<void> {
    if (!transactions) return work(undefined);
    for (let attempt = 1; ; attempt += 1) {
      const session = await connection.startSession();
      try {
        await session.withTransaction(() => work(session));
        return;
      } catch (error) {
        // mongod labels write conflicts TransientTransactionError and withTransaction reruns them;
        // some servers (emulators) fail the commit unlabelled instead. The transaction was aborted,
        // so rerunning is safe, and lets e.g. a create see the winner's document as a duplicate key.
        if (errorCode(error) !== WRITE_CONFLICT || attempt >= CONFLICT_RERUNS) throw error;
      } finally {
        await session.endSession();
      }
      await delay(attempt * (5 + Math.random() * 20));
    }
  }

  async function withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
    const owner = randomUUID();
    // Local time, not the injected clock: the lease is about live processes, and a few seconds of
    // skew between hosts only shortens or lengthens how long a crashed holder blocks the others.
    const giveUpAt = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const now = Date.now();
      try {
        // Matches only a free (expired) lease; a held one makes the upsert insert a duplicate _id.
        await Lock.updateOne({ _id: name, until: { $lte: new Date(now) } }, { $set: { owner, until: new Date(now + LOCK_LEASE_MS) } }, { upsert: true });
        break;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        if (Date.now() >= giveUpAt) throw storeUnavailableError(`Timed out waiting for the ${name} lock.`, error);
        await delay(10 + Math.random() * 40);
      }
    }
    try {
      return await work();
    } finally {
      // If this fails the lease simply runs out.
      await Lock.deleteOne({ _id: name, owner }).catch(() => undefined);
    }
  }

  async function bumpRevision(name: RevisionName, session?: ClientSession): Promise<number> {
    const doc = await Revision.findOneAndUpdate({ _id: name }, { $inc: { value: 1 } }, { upsert: true, returnDocument: 'after', session })
      .lean()
      .exec();
    if (doc === null) throw storeUnavailableError('MongoDB did not return the new revision.');
    return doc.value;
  }

  const oidc: OidcStore = {
    async upsert(model, id, payload, expiresInSeconds) {
      const _id = oidcId(model, id);
      const doc: OidcRecordDocument = { _id, model: String(model), payload };
      if (payload.uid != null) doc.uid = String(payload.uid);
      if (payload.userCode != null) doc.userCode = String(payload.userCode);
      if (payload.grantId != null) doc.grantId = String(payload.grantId);
      if (expiresInSeconds !== undefined) doc.expiresAt = new Date(clock() + expiresInSeconds * 1000);
      await OidcRecord.replaceOne({ _id }, doc, { upsert: true }).exec();
    },
    async find(model, id) {
      const doc = await OidcRecord.findOne({ _id: oidcId(model, id), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async findByUid(model, uid) {
      const doc = await OidcRecord.findOne({ model: String(model), uid: String(uid), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async findByUserCode(model, userCode) {
      const doc = await OidcRecord.findOne({ model: String(model), userCode: String(userCode), ...live() }, { payload: 1 }).lean().exec();
      return doc?.payload as OidcPayload | undefined;
    },
    async consume(model, id) {
      // One conditional update: of two concurrent consumers, only the first matches and sets the time.
      const result = await OidcRecord.updateOne(
        { _id: oidcId(model, id), 'payload.consumed': { $exists: false }, ...live() },
        { $set: { 'payload.consumed': Math.floor(clock() / 1000) } },
      ).exec();
      return result.modifiedCount === 1;
    },
    async swapSuccessor(model, id, successor) {
      // A conditional update on the value just read, rerun when another caller changed it first, so
      // each caller replaces a different value. (A findAndModify answering the document as it was
      // would do in one step on mongod, but is not atomic on the emulator without transactions.)
      const _id = oidcId(model, id);
      for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
        const doc = await OidcRecord.findOne({ _id }, { successor: 1 }).lean().exec();
        if (doc === null) return undefined;
        const previous = doc.successor;
        const result = await OidcRecord.updateOne(
          { _id, successor: previous ?? { $exists: false } },
          { $set: { successor: String(successor) } },
        ).exec();
        if (result.modifiedCount === 1) return previous;
      }
      throw storeUnavailableError(`Too many concurrent rotations of one ${String(model)}.`);
    },
    async destroy(model, id) {
      await OidcRecord.deleteOne({ _id: oidcId(model, id) }).exec();
    },
    async revokeByGrantId(model, grantId) {
      await OidcRecord.deleteMany({ model: String(model), grantId: String(grantId) }).exec();
    },
    async findByAccountId(model, accountId) {
      const docs = await OidcRecord.find({ model: String(model), 'payload.accountId': String(accountId), ...live() }, { payload: 1 }).lean().exec();
      // `_id` is `${model}:${id}`: what follows the model's prefix is the id, colons and all.
      const prefix = oidcId(model, '');
      return docs.map((doc) => ({ id: doc._id.slice(prefix.length), payload: doc.payload as OidcPayload }));
    },
    async take(model, id) {
      const db = connection.db;
      if (db === undefined) throw storeUnavailableError('The MongoDB connection is not open.');
      // One findAndModify: of two concurrent takers, only one gets the document. Sent as a raw
      // command because the driver's findOneAndDelete always adds `new: false`, which some servers
      // (emulators) refuse next to `remove: true`; so the connection's write concern is added here.
      const command: Record<string, unknown> = {
        findAndModify: OidcRecord.collection.collectionName,
        query: { _id: oidcId(model, id), ...live() },
        remove: true,
        fields: { payload: 1 },
      };
      if (db.writeConcern !== undefined) mongoose.mongo.WriteConcern.apply(command, db.writeConcern);
      const result = await db.command(command);
      const doc = result.value as Pick<OidcRecordDocument, 'payload'> | null | undefined;
      return (doc?.payload ?? undefined) as OidcPayload | undefined;
    },
  };

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

  const accounts: AccountRepository = {
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
      // Compare-and-set on both fields, so the lock seen and the count written belong together. Not
      // findOneAndUpdate with $inc: some servers (the emulator the tests run on) apply the $inc
      // atomically but read the returned document separately, so two callers may see one count.
      for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
        const doc = await Account.findOne({ _id: String(sub) }, { failedSignIns: 1, lockedUntil: 1 }).lean().exec();
        if (doc === null) return undefined;
        const current = doc.failedSignIns ?? 0;
        const lockedUntil = doc.lockedUntil ?? undefined;
        if (lockedUntil && lockedUntil.getTime() > now.getTime()) return { attempts: current, lockedUntil };
        const result = await Account.updateOne(
          { _id: String(sub), failedSignIns: { $eq: doc.failedSignIns ?? null }, lockedUntil: { $eq: doc.lockedUntil ?? null } },
          { $set: { failedSignIns: current + 1, updatedAt: new Date(clock()) } },
        ).exec();
        if (result.modifiedCount > 0) return { attempts: current + 1 };
      }
      throw storeUnavailableError('The account field failedSignIns kept changing under concurrent writes.');
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

  const clients: ClientRepository = {
    async create(client) {
      const doc: ClientDocument = { _id: String(client.clientId), metadata: client.metadata, createdAt: new Date(clock()) };
      try {
        await atomically(async (session) => {
          await Client.insertMany([doc], { session });
          await bumpRevision('clients', session);
        });
      } catch (error) {
        if (isDuplicateKey(error)) throw clientIdTakenError(doc._id, error);
        throw error;
      }
      // A copy, so a caller changing its object later cannot change what this call reported.
      return toClient({ ...doc, metadata: structuredClone(doc.metadata) });
    },
    async find(clientId) {
      const doc = await Client.findOne({ _id: String(clientId) }).lean().exec();
      return doc === null ? undefined : toClient(doc);
    },
    async update(clientId, metadata) {
      let found = false;
      await atomically(async (session) => {
        const result = await Client.updateOne({ _id: String(clientId) }, { $set: { metadata } }, { session }).exec();
        found = result.matchedCount > 0;
        if (found) await bumpRevision('clients', session);
      });
      return found;
    },
    async list() {
      return (await Client.find({}).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toClient);
    },
    async delete(clientId) {
      let found = false;
      await atomically(async (session) => {
        const result = await Client.deleteOne({ _id: String(clientId) }, { session }).exec();
        found = result.deletedCount > 0;
        if (found) await bumpRevision('clients', session);
      });
      return found;
    },
  };

  const resources: ResourceRepository = {
    async create(resource) {
      const doc: ResourceDocument = {
        _id: String(resource.audience),
        // A copy, so a caller changing its array later cannot change what this call reported.
        scopes: resource.scopes.map(String),
        format: resource.format,
        ttlSeconds: resource.ttlSeconds,
        createdAt: new Date(clock()),
      };
      if (resource.name !== undefined) doc.name = String(resource.name);
      if (resource.scopeRoles && Object.keys(resource.scopeRoles).length) {
        doc.scopeRoles = Object.entries(resource.scopeRoles).map(([scope, roles]) => ({ scope: String(scope), roles: roles.map(String) }));
      }
      if (resource.signingAlg !== undefined) doc.signingAlg = String(resource.signingAlg);
      try {
        await atomically(async (session) => {
          await Resource.insertMany([doc], { session });
          await bumpRevision('resources', session);
        });
      } catch (error) {
        if (isDuplicateKey(error)) throw resourceAudienceTakenError(doc._id, error);
        throw error;
      }
      return toResource(doc);
    },
    async find(audience) {
      const doc = await Resource.findOne({ _id: String(audience) }).lean().exec();
      return doc === null ? undefined : toResource(doc);
    },
    async list() {
      return (await Resource.find({}).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toResource);
    },
    async delete(audience) {
      let found = false;
      await atomically(async (session) => {
        const result = await Resource.deleteOne({ _id: String(audience) }, { session }).exec();
        found = result.deletedCount > 0;
        if (found) await bumpRevision('resources', session);
      });
      return found;
    },
  };

  const keys: KeyRepository = {
    async list() {
      return (await Key.find(live()).sort({ createdAt: 1, _id: 1 }).lean().exec()).map(toKey);
    },
    async rotate(add, retire) {
      const uses = [...new Set(add.map((key) => key.use))];
      const kids = add.map((key) => String(key.kid));
      const docs = add.map(toKeyDocument);
      // The lock serialises rotations across processes; the transaction (where there is one)
      // makes each all-or-nothing. Without one, inserting first means a crash midway leaves an
      // extra current key, which the next rotation retires, rather than no current key at all.
      await withLock('keys.rotate', () =>
        atomically(async (session) => {
          if (docs.length > 0) await Key.insertMany(docs, { session, ordered: true });
          await Key.updateMany(
            { use: { $in: uses }, retiredAt: { $exists: false }, _id: { $nin: kids } },
            { $set: { retiredAt: retire.retiredAt, expiresAt: retire.expiresAt } },
            { session },
          ).exec();
          await bumpRevision('keys', session);
        }),
      );
    },
  };

  const revisions: RevisionRepository = {
    async get(name) {
      const doc = await Revision.findOne({ _id: String(name) }).lean().exec();
      return doc?.value ?? 0;
    },
    async bump(name) {
      // Compare-and-set, not bumpRevision's $inc: the caller gets this bump's value, and some
      // servers (the emulator the tests run on) read findAndModify's result apart from the update,
      // so two concurrent $inc callers may see one value. Writes that bump inside their own
      // transaction ignore the value and keep the single $inc.
      for (let attempt = 0; attempt < COMPARE_AND_SET_ATTEMPTS; attempt += 1) {
        const doc = await Revision.findOne({ _id: String(name) }).lean().exec();
        try {
          if (doc === null) {
            await Revision.insertMany([{ _id: String(name), value: 1 }]);
            return 1;
          }
          const result = await Revision.updateOne({ _id: String(name), value: doc.value }, { $set: { value: doc.value + 1 } }).exec();
          if (result.modifiedCount > 0) return doc.value + 1;
        } catch (error) {
          // Another process created the counter first: read it again.
          if (!isDuplicateKey(error)) throw error;
        }
      }
      throw storeUnavailableError(`The ${String(name)} revision kept changing under concurrent bumps.`);
    },
  };

  const audit: AuditRepository = {
    async append(records) {
      if (records.length === 0) return;
      // Upserts that only ever insert: a batch retried after a partial failure (or a lost answer)
      // leaves one copy of each event. Unordered: one refused event must not keep the others out.
      await AuditEvent.bulkWrite(records.map((record) => {
        const { _id, ...fields } = toAuditDocument(record);
        return { updateOne: { filter: { _id }, update: { $setOnInsert: fields }, upsert: true } };
      }), { ordered: false });
    },
    async query(query) {
      const filter: Record<string, unknown> = { expiresAt: { $gt: new Date(clock()) } };
      if (query.sub !== undefined) filter.sub = String(query.sub);
      if (query.clientId !== undefined) filter.clientId = String(query.clientId);
      if (query.types !== undefined) filter.type = { $in: query.types.map(String) };
      const at: Record<string, Date> = {};
      if (query.since !== undefined) at.$gte = query.since;
      if (query.until !== undefined) at.$lt = query.until;
      if (Object.keys(at).length) filter.at = at;
      if (query.before !== undefined) {
        filter.$or = [{ at: { $lt: query.before.at } }, { at: query.before.at, _id: { $lt: String(query.before.id) } }];
      }
      const limit = Math.max(0, Math.floor(query.limit));
      // MongoDB reads limit(0) as "no limit"; the port means none.
      if (limit === 0) return [];
      const docs = await AuditEvent.find(filter).sort({ at: -1, _id: -1 }).limit(limit).lean().exec();
      return docs.map(toAuditRecord);
    },
  };

  let closed = false;

  return {
    kind: 'mongodb',
    oidc,
    accounts,
    clients,
    resources,
    keys,
    revisions,
    audit,
    rateLimiter(options) {
      // RateLimiterMongo takes a mongoose connection as its storeClient and counts in its database.
      // Indexes come from openMongoStore() (the RateLimit model): the limiter's own creation runs
      // unawaited whenever a limiter is built and only logs a failure, and its upserts rely on the
      // unique key index. Expired counters need no TTL deletion: the limiter compares `expire` with
      // the time on every read and write, and replaces an expired counter.
      return new RateLimiterMongo({
        storeClient: connection,
        tableName: RATE_LIMITS_COLLECTION,
        disableIndexesCreation: true,
        keyPrefix: options.keyPrefix,
        points: options.points,
        duration: options.duration,
        ...(options.blockDuration === undefined ? {} : { blockDuration: options.blockDuration }),
      });
    },
    async ping() {
      // After close() the driver would quietly reconnect on the next command; a closed store is not ready.
      if (closed || connection.readyState !== mongoose.ConnectionStates.connected || connection.db === undefined) {
        throw storeUnavailableError('The MongoDB connection is not open.');
      }
      try {
        await connection.db.command({ ping: 1 });
      } catch (error) {
        throw storeUnavailableError('MongoDB does not answer.', error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await connection.close();
    },
  };
}

/**
 * Creates the revision counters up front, so bumps inside transactions never race to insert them
 * (an upsert that loses such a race fails with a duplicate key instead of retrying).
 */
async function seedRevisions(models: StoreModels): Promise<void> {
  for (const name of REVISION_NAMES) {
    try {
      await models.Revision.updateOne({ _id: name }, { $setOnInsert: { value: 0 } }, { upsert: true }).exec();
    } catch (error) {
      // Another process seeded it at the same moment: the counter exists, which is all we need.
      if (!isDuplicateKey(error)) throw error;
    }
  }
}

async function supportsTransactions(connection: Connection, models: StoreModels): Promise<boolean> {
  const db = connection.db;
  if (db === undefined) return false;
  const hello = await db.admin().command({ hello: 1 });
  if (typeof hello.setName === 'string' || hello.msg === 'isdbgrid') return true;
  // A standalone mongod refuses transactions, but some single-node servers (emulators) have them: ask by trying.
  const session = await connection.startSession();
  try {
    await session.withTransaction(async () => {
      await models.Revision.findOne({ _id: 'keys' }).session(session).lean().exec();
    });
    return true;
  } catch (error) {
    if (errorCode(error) === ILLEGAL_OPERATION) return false;
    throw error;
  } finally {
    await session.endSession();
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
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

/** E11000, optionally on a given field (by key pattern when the server reports it, else by index name). */
function isDuplicateKey(error: unknown, field?: string): boolean {
  if (errorCode(error) !== 11000) return false;
  if (field === undefined) return true;
  const details = error as { keyPattern?: Record<string, unknown>; keyValue?: Record<string, unknown>; message?: unknown };
  if (details.keyPattern !== undefined) return field in details.keyPattern;
  if (details.keyValue !== undefined) return field in details.keyValue;
  return typeof details.message === 'string' && details.message.includes(field);
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

function toClient(doc: ClientDocument): StoredClient {
  return { clientId: doc._id, metadata: doc.metadata, createdAt: doc.createdAt };
}

function toResource(doc: ResourceDocument): ResourceServerRecord {
  const resource: ResourceServerRecord = {
    audience: doc._id,
    scopes: [...doc.scopes],
    format: doc.format,
    ttlSeconds: doc.ttlSeconds,
    createdAt: doc.createdAt,
  };
  if (doc.name != null) resource.name = doc.name;
  if (doc.scopeRoles?.length) resource.scopeRoles = Object.fromEntries(doc.scopeRoles.map(({ scope, roles }) => [scope, [...roles]]));
  if (doc.signingAlg != null) resource.signingAlg = doc.signingAlg as AccessTokenSigningAlg;
  return resource;
}

function toAuditDocument(record: AuditRecord): AuditEventDocument {
  const doc: AuditEventDocument = { _id: String(record.id), type: String(record.type), at: record.at, expiresAt: record.expiresAt };
  if (record.sub !== undefined) doc.sub = String(record.sub);
  if (record.clientId !== undefined) doc.clientId = String(record.clientId);
  if (record.ip !== undefined) doc.ip = String(record.ip);
  if (record.requestId !== undefined) doc.requestId = String(record.requestId);
  if (record.details !== undefined) doc.details = record.details;
  return doc;
}

function toAuditRecord(doc: AuditEventDocument): AuditRecord {
  const record: AuditRecord = { id: doc._id, type: doc.type, at: doc.at, expiresAt: doc.expiresAt };
  if (doc.sub != null) record.sub = doc.sub;
  if (doc.clientId != null) record.clientId = doc.clientId;
  if (doc.ip != null) record.ip = doc.ip;
  if (doc.requestId != null) record.requestId = doc.requestId;
  if (doc.details != null) record.details = doc.details;
  return record;
}

function toKeyDocument(key: StoredKey): KeyDocument {
  const doc: KeyDocument = {
    _id: String(key.kid),
    use: key.use,
    alg: key.alg,
    encryptedPrivate: key.encryptedPrivate,
    createdAt: key.createdAt,
  };
  if (key.publicJwk !== undefined) doc.publicJwk = key.publicJwk;
  if (key.retiredAt !== undefined) doc.retiredAt = key.retiredAt;
  if (key.expiresAt !== undefined) doc.expiresAt = key.expiresAt;
  return doc;
}

function toKey(doc: KeyDocument): StoredKey {
  const key: StoredKey = {
    kid: doc._id,
    use: doc.use as KeyUse,
    alg: doc.alg,
    encryptedPrivate: doc.encryptedPrivate,
    createdAt: doc.createdAt,
  };
  if (doc.publicJwk != null) key.publicJwk = doc.publicJwk;
  if (doc.retiredAt != null) key.retiredAt = doc.retiredAt;
  if (doc.expiresAt != null) key.expiresAt = doc.expiresAt;
  return key;
}
