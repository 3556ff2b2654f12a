/**
 * Which MongoDB failures mean "the database cannot be reached or used right now": the network,
 * server selection, a primary stepping down or shutting down. A request meeting one gets 503 with
 * Retry-After (store/outage.ts); anything else (a bug, a refused write) stays what it is.
 */
import mongoose from 'mongoose';

const { MongoError, MongoNetworkError, MongoServerSelectionError, MongoTopologyClosedError, MongoNotConnectedError, MongoServerClosedError } = mongoose.mongo;

/** Server codes of the "not reachable / not primary / shutting down" family (MongoDB's error_codes.yml). */
const UNAVAILABLE_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/** Driver errors that are not exported as classes: the connection pool's. */
const UNAVAILABLE_NAMES = new Set(['MongoPoolClearedError', 'MongoPoolClosedError', 'MongoWaitQueueTimeoutError', 'MongooseServerSelectionError']);

export function isMongoUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (UNAVAILABLE_NAMES.has((error as { name?: unknown }).name as string)) return true;
  if (!(error instanceof MongoError)) return false;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError || error instanceof MongoTopologyClosedError
    || error instanceof MongoNotConnectedError || error instanceof MongoServerClosedError) return true;
  // A transaction aborted by a failover is labelled transient: the caller may retry it.
  if (error.hasErrorLabel('TransientTransactionError') || error.hasErrorLabel('RetryableWriteError')) return true;
  return typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code);
}

export function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** E11000, optionally on a given field (by key pattern when the server reports it, else by index name). */
export function isDuplicateKey(error: unknown, field?: string): boolean {
  if (errorCode(error) !== 11000) return false;
  if (field === undefined) return true;
  const details = error as { keyPattern?: Record<string, unknown>; keyValue?: Record<string, unknown>; message?: unknown };
  if (details.keyPattern !== undefined) return field in details.keyPattern;
  if (details.keyValue !== undefined) return field in details.keyValue;
  return typeof details.message === 'string' && details.message.includes(field);
}
