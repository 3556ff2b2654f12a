/**
 * Mongoose schemas for the MongoDB store. Natural keys (sub, clientId, audience, kid, revision name) are the
 * `_id`, so uniqueness and lookups cost no extra index. Schemas never create collections or
 * indexes on their own: openMongoStore() does that explicitly at startup.
 */
import { Schema, type Connection, type Model } from 'mongoose';

/** The collection every rate limiter counts in; keys carry the limiter's prefix, so limits stay apart. */
export const RATE_LIMITS_COLLECTION = 'rate_limits';

/** Options every schema shares: no implicit DDL, no version key, empty objects kept as they were given. */
const schemaOptions = {
  versionKey: false,
  autoCreate: false,
  autoIndex: false,
  bufferCommands: false,
  minimize: false,
  // A field the schema does not know is a bug in this module, not data to drop silently.
  strict: 'throw',
} as const;

/** One document per oidc-provider record of any model; `_id` is `${model}:${id}` (model names never contain ':'). */
export interface OidcRecordDocument {
  _id: string;
  model: string;
  /** The provider's payload as given, plus `consumed` once consumed. */
  payload: Record<string, unknown>;
  /** Copies of the payload's lookup fields, present only when the payload has them (partial indexes). */
  uid?: string;
  userCode?: string;
  grantId?: string;
  /** A rotated refresh token's successor (its id), set by swapSuccessor; replaceOne of a re-save drops it. */
  successor?: string;
  /** Absent for records that never expire; the TTL index ignores such documents. */
  expiresAt?: Date;
}

const oidcRecordSchema = new Schema<OidcRecordDocument>(
  {
    _id: { type: String, required: true },
    model: { type: String, required: true },
    payload: { type: Schema.Types.Mixed, required: true },
    uid: { type: String },
    userCode: { type: String },
    grantId: { type: String },
    successor: { type: String },
    expiresAt: { type: Date },
  },
  { ...schemaOptions, collection: 'oidc' },
);
oidcRecordSchema.index({ model: 1, uid: 1 }, { name: 'model_uid', partialFilterExpression: { uid: { $exists: true } } });
oidcRecordSchema.index({ model: 1, userCode: 1 }, { name: 'model_userCode', partialFilterExpression: { userCode: { $exists: true } } });
oidcRecordSchema.index({ model: 1, grantId: 1 }, { name: 'model_grantId', partialFilterExpression: { grantId: { $exists: true } } });
// On the payload itself rather than a copied field, so records written before this index are found too.
oidcRecordSchema.index(
  { model: 1, 'payload.accountId': 1 },
  { name: 'model_accountId', partialFilterExpression: { 'payload.accountId': { $exists: true } } },
);
// Housekeeping only: the monitor runs about once a minute, so reads filter on expiresAt too.
oidcRecordSchema.index({ expiresAt: 1 }, { name: 'expiresAt_ttl', expireAfterSeconds: 0 });

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
accountSchema.index({ externalId: 1 }, { name: 'externalId_unique', unique: true, partialFilterExpression: { externalId: { $exists: true } } });

export interface ClientDocument {
  /** The client_id. */
  _id: string;
  metadata: Record<string, unknown>;
  createdAt: Date;
}

const clientSchema = new Schema<ClientDocument>(
  {
    _id: { type: String, required: true },
    metadata: { type: Schema.Types.Mixed, required: true },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'clients' },
);
clientSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export interface ResourceDocument {
  /** The audience (resource indicator), compared exactly as stored. */
  _id: string;
  name?: string;
  scopes: string[];
  format: 'jwt' | 'opaque';
  ttlSeconds: number;
  /** Scopes limited to roles, as pairs: a scope token may hold `.` and `$`, which field names must not. */
  scopeRoles?: Array<{ scope: string; roles: string[] }>;
  /** Absent: RS256. */
  signingAlg?: string;
  createdAt: Date;
}

const resourceSchema = new Schema<ResourceDocument>(
  {
    _id: { type: String, required: true },
    name: { type: String },
    scopes: { type: [String], required: true },
    format: { type: String, required: true, enum: ['jwt', 'opaque'] },
    ttlSeconds: { type: Number, required: true },
    scopeRoles: { type: [{ _id: false, scope: { type: String, required: true }, roles: { type: [String], required: true } }], default: undefined },
    signingAlg: { type: String },
    createdAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'resources' },
);
resourceSchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export interface KeyDocument {
  /** The kid. */
  _id: string;
  use: string;
  alg: string;
  publicJwk?: Record<string, unknown>;
  encryptedPrivate: string;
  createdAt: Date;
  retiredAt?: Date;
  expiresAt?: Date;
}

const keySchema = new Schema<KeyDocument>(
  {
    _id: { type: String, required: true },
    use: { type: String, required: true },
    alg: { type: String, default: '' },
    publicJwk: { type: Schema.Types.Mixed },
    encryptedPrivate: { type: String, required: true },
    createdAt: { type: Date, required: true },
    retiredAt: { type: Date },
    expiresAt: { type: Date },
  },
  { ...schemaOptions, collection: 'keys' },
);
keySchema.index({ createdAt: 1, _id: 1 }, { name: 'createdAt_id' });

export interface RevisionDocument {
  /** The revision name. */
  _id: string;
  value: number;
}

const revisionSchema = new Schema<RevisionDocument>(
  {
    _id: { type: String, required: true },
    value: { type: Number, required: true },
  },
  { ...schemaOptions, collection: 'revisions' },
);

/**
 * Leases that serialise work across processes (key rotation). A transaction alone is not enough:
 * a standalone mongod has none, and two snapshot-isolated rotations that both see "no current key"
 * only collide if the server detects their write conflict, which not every server does.
 */
export interface LockDocument {
  _id: string;
  owner: string;
  until: Date;
}

const lockSchema = new Schema<LockDocument>(
  {
    _id: { type: String, required: true },
    owner: { type: String, required: true },
    until: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'locks' },
);

/**
 * Counters of the rate limiters (rate-limiter-flexible's RateLimiterMongo writes them through the
 * driver, not through this model). The model exists so openMongoStore() creates the collection's
 * indexes with the others: the limiter's own index creation is switched off.
 */
export interface RateLimitDocument {
  key: string;
  points: number;
  /** null for counters that never expire. */
  expire: Date | null;
}

const rateLimitSchema = new Schema<RateLimitDocument>(
  {
    key: { type: String, required: true },
    points: { type: Number, required: true },
    expire: { type: Date },
  },
  { ...schemaOptions, collection: RATE_LIMITS_COLLECTION },
);
// The limiter relies on this index: an upsert that finds only an expired counter collides with it,
// and the limiter then replaces the expired counter instead of inserting a second one.
rateLimitSchema.index({ key: 1 }, { name: 'key_unique', unique: true });
// Housekeeping only: the limiter compares `expire` with the time itself on every read and write.
rateLimitSchema.index({ expire: -1 }, { name: 'expire_ttl', expireAfterSeconds: 0 });

/** One security event of the audit trail (see domain/audit.ts). */
export interface AuditEventDocument {
  /** The event's id. */
  _id: string;
  type: string;
  at: Date;
  sub?: string;
  clientId?: string;
  ip?: string;
  requestId?: string;
  details?: Record<string, unknown>;
  expiresAt: Date;
}

const auditEventSchema = new Schema<AuditEventDocument>(
  {
    _id: { type: String, required: true },
    type: { type: String, required: true },
    at: { type: Date, required: true },
    sub: { type: String },
    clientId: { type: String },
    ip: { type: String },
    requestId: { type: String },
    details: { type: Schema.Types.Mixed },
    expiresAt: { type: Date, required: true },
  },
  { ...schemaOptions, collection: 'audit_events' },
);
// Newest first, by account, by client, by type, or all: each read has the index that fits it.
auditEventSchema.index({ at: -1, _id: -1 }, { name: 'at_id' });
auditEventSchema.index({ sub: 1, at: -1, _id: -1 }, { name: 'sub_at_id', partialFilterExpression: { sub: { $exists: true } } });
auditEventSchema.index({ clientId: 1, at: -1, _id: -1 }, { name: 'clientId_at_id', partialFilterExpression: { clientId: { $exists: true } } });
auditEventSchema.index({ type: 1, at: -1, _id: -1 }, { name: 'type_at_id' });
// The retention period: housekeeping only, reads filter on expiresAt too.
auditEventSchema.index({ expiresAt: 1 }, { name: 'expiresAt_ttl', expireAfterSeconds: 0 });

export interface StoreModels {
  OidcRecord: Model<OidcRecordDocument>;
  Account: Model<AccountDocument>;
  Client: Model<ClientDocument>;
  Resource: Model<ResourceDocument>;
  Key: Model<KeyDocument>;
  Revision: Model<RevisionDocument>;
  Lock: Model<LockDocument>;
  RateLimit: Model<RateLimitDocument>;
  AuditEvent: Model<AuditEventDocument>;
}

/** Binds the schemas to one connection (never to mongoose's global default connection). */
export function createModels(connection: Connection): StoreModels {
  return {
    OidcRecord: connection.model<OidcRecordDocument>('OidcRecord', oidcRecordSchema),
    Account: connection.model<AccountDocument>('Account', accountSchema),
    Client: connection.model<ClientDocument>('Client', clientSchema),
    Resource: connection.model<ResourceDocument>('Resource', resourceSchema),
    Key: connection.model<KeyDocument>('Key', keySchema),
    Revision: connection.model<RevisionDocument>('Revision', revisionSchema),
    Lock: connection.model<LockDocument>('Lock', lockSchema),
    RateLimit: connection.model<RateLimitDocument>('RateLimit', rateLimitSchema),
    AuditEvent: connection.model<AuditEventDocument>('AuditEvent', auditEventSchema),
  };
}
