/**
 * The MongoDB store, on its own mongoose connection (no global mongoose state). Opening it connects,
 * binds each repository's schema, creates collections' indexes explicitly (never lazily on a
 * request path), seeds the revision counters and composes the repositories (one module each).
 */
import mongoose, { type Connection, type Model } from 'mongoose';

import type { Store } from '../port.ts';
import { guardStore } from '../outage.ts';
import { storeUnavailableError } from '../store-errors.ts';
import { accountModel, mongoAccounts } from './accounts.ts';
import { auditEventModel, mongoAudit } from './audit.ts';
import { clientModel, mongoClients } from './clients.ts';
import { mongoDatabase } from './database.ts';
import { mongoExpiringRecords, oidcRecordModel } from './expiring-records.ts';
import { identityModel, mongoIdentities } from './identities.ts';
import { keyModel, mongoKeys } from './keys.ts';
import { leases, lockModel } from './locks.ts';
import { errorCode, isMongoUnavailable } from './mongo-errors.ts';
import { mongoRateLimiter, rateLimitModel } from './rate-limits.ts';
import { mongoResources, resourceModel } from './resources.ts';
import { mongoRevisions, revisionModel, seedRevisions, type RevisionDocument } from './revisions.ts';
import { mongoUpstreams, upstreamModel } from './upstreams.ts';

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

/** Tessera's requests make single-document, indexed calls of a few milliseconds; 3 s means the store is gone. */
const DEFAULT_OPERATION_TIMEOUT_MS = 3_000;
/** MongoServerError code for IllegalOperation, what a standalone mongod answers to a transaction. */
const ILLEGAL_OPERATION = 20;

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

  const models = bindModels(connection);
  let transactions: boolean;
  try {
    for (const model of Object.values(models)) await model.createIndexes();
    await seedRevisions(models.Revision);
    transactions = options.transactions ?? (await supportsTransactions(connection, models.Revision));
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw storeUnavailableError('Cannot prepare the MongoDB collections and indexes.', error);
  }

  // The rotation lock waits for other rotations on its own bounded schedule (LOCK_WAIT_MS).
  return guardStore(composeStore(connection, models, { clock, transactions }), {
    isUnavailable: isMongoUnavailable,
    deadlineMs: options.operationTimeoutMS ?? DEFAULT_OPERATION_TIMEOUT_MS,
    unbounded: ['keys.rotate'],
  });
}

/** Binds every repository's schema to this connection (never to mongoose's global default connection). */
function bindModels(connection: Connection) {
  return {
    OidcRecord: oidcRecordModel(connection),
    Account: accountModel(connection),
    Client: clientModel(connection),
    Resource: resourceModel(connection),
    Key: keyModel(connection),
    Revision: revisionModel(connection),
    Lock: lockModel(connection),
    RateLimit: rateLimitModel(connection),
    AuditEvent: auditEventModel(connection),
    Upstream: upstreamModel(connection),
    Identity: identityModel(connection),
  };
}

function composeStore(connection: Connection, models: ReturnType<typeof bindModels>, settings: { clock: () => number; transactions: boolean }): Store {
  const database = mongoDatabase(connection, settings);
  const revisions = mongoRevisions(models.Revision);
  let closed = false;

  return {
    kind: 'mongodb',
    oidc: mongoExpiringRecords(database, models.OidcRecord),
    accounts: mongoAccounts(database, models.Account),
    clients: mongoClients(database, models.Client, revisions),
    resources: mongoResources(database, models.Resource, revisions),
    upstreams: mongoUpstreams(database, models.Upstream, revisions),
    identities: mongoIdentities(models.Identity),
    keys: mongoKeys(database, models.Key, revisions, leases(models.Lock)),
    revisions: revisions.repository,
    audit: mongoAudit(database, models.AuditEvent),
    rateLimiter: (options) => mongoRateLimiter(connection, options),
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

async function supportsTransactions(connection: Connection, Revision: Model<RevisionDocument>): Promise<boolean> {
  const db = connection.db;
  if (db === undefined) return false;
  const hello = await db.admin().command({ hello: 1 });
  if (typeof hello.setName === 'string' || hello.msg === 'isdbgrid') return true;
  // A standalone mongod refuses transactions, but some single-node servers (emulators) have them: ask by trying.
  const session = await connection.startSession();
  try {
    await session.withTransaction(async () => {
      await Revision.findOne({ _id: 'keys' }).session(session).lean().exec();
    });
    return true;
  } catch (error) {
    if (errorCode(error) === ILLEGAL_OPERATION) return false;
    throw error;
  } finally {
    await session.endSession();
  }
}
