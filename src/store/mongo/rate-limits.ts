/** Rate limit counters in the `rate_limits` collection, written by rate-limiter-flexible's RateLimiterMongo. */
import { Schema, type Connection, type Model } from 'mongoose';
import { RateLimiterMongo } from 'rate-limiter-flexible';

import type { RateLimiterOptions } from '../port.ts';
import { schemaOptions } from './schema-options.ts';

/** The collection every rate limiter counts in; keys carry the limiter's prefix, so limits stay apart. */
export const RATE_LIMITS_COLLECTION = 'rate_limits';

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

export function rateLimitModel(connection: Connection): Model<RateLimitDocument> {
  return connection.model<RateLimitDocument>('RateLimit', rateLimitSchema);
}

/**
 * RateLimiterMongo takes a mongoose connection as its storeClient and counts in its database.
 * Indexes come from openMongoStore() (the RateLimit model): the limiter's own creation runs
 * unawaited whenever a limiter is built and only logs a failure, and its upserts rely on the
 * unique key index. Expired counters need no TTL deletion: the limiter compares `expire` with
 * the time on every read and write, and replaces an expired counter.
 */
export function mongoRateLimiter(connection: Connection, options: RateLimiterOptions): RateLimiterMongo {
  return new RateLimiterMongo({
    storeClient: connection,
    tableName: RATE_LIMITS_COLLECTION,
    disableIndexesCreation: true,
    keyPrefix: options.keyPrefix,
    points: options.points,
    duration: options.duration,
    ...(options.blockDuration === undefined ? {} : { blockDuration: options.blockDuration }),
  });
}
