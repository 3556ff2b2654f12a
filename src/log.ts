/**
 * Structured JSON logs (pino). Secrets never reach a log line: every line is redacted by key name
 * (REDACTED_KEYS: passwords, secrets, codes, tokens, headers, query strings), and nothing logs a URL with its
 * query string (codes, tokens and reset links travel there): the access log writes the path only.
 * Every line written while a request is handled carries its `requestId` (request-context.ts).
 */
import { pino, type Logger } from 'pino';

import type { LogLevel } from './config.ts';
import { currentRequest } from './request-context.ts';

export type { Logger };

/**
 * Keys whose values never reach a log line, wherever they sit in what is logged (at the top or
 * nested, MAX_REDACTION_DEPTH deep): credentials, codes, tokens, and the containers they travel in
 * (query strings, headers). Matched by name on every line, so a new place is covered without a path.
 */
export const REDACTED_KEYS: readonly string[] = [
  'password',
  'passwordHash',
  'new_password',
  'current_password',
  'client_secret',
  'secret',
  'code',
  'code_verifier',
  'refresh_token',
  'access_token',
  'id_token',
  'id_token_hint',
  'logout_token',
  'token',
  'client_assertion',
  'assertion',
  'recoveryCodes',
  'authorization',
  'cookie',
  'set-cookie',
  'query',
  'querystring',
];

const CENSOR = '[redacted]';
const MAX_REDACTION_DEPTH = 4;
const REDACTED = new Set(REDACTED_KEYS);

/**
 * A copy of `value` with every REDACTED_KEYS entry censored; `value` itself when there is nothing
 * to censor (the common case: no allocation). Callers' objects are never changed. Not pino's
 * `redact`: its wildcard paths cost 12 to 24 microseconds a line, this a fraction of one.
 */
export function redact<T>(value: T, depth = 0): T {
  if (depth > MAX_REDACTION_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index += 1) {
      const item: unknown = value[index];
      const next = redact(item, depth + 1);
      if (next !== item) (copy ??= [...value])[index] = next;
    }
    return (copy ?? value) as T;
  }
  const isError = value instanceof Error;
  const prototype = Object.getPrototypeOf(value) as unknown;
  // Plain objects and errors are looked into; dates, buffers and other class instances are left alone.
  if (!isError && prototype !== Object.prototype && prototype !== null) return value;
  let copy: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const current = record[key];
    // An error's `code` is its kind (ERR_..., ECONNREFUSED), not an authorization code.
    const next = REDACTED.has(key) && !(isError && key === 'code') ? CENSOR : redact(current, depth + 1);
    if (next === current) continue;
    copy ??= isError ? copyOfError(value) : { ...record };
    copy[key] = next;
  }
  return (copy ?? value) as T;
}

/** Same prototype, message, stack and cause (own, non-enumerable; V8's stack is an accessor read here). */
function copyOfError(error: Error): Record<string, unknown> {
  const copy = Object.create(Object.getPrototypeOf(error) as object) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(error)) {
    Object.defineProperty(copy, name, {
      value: (error as unknown as Record<string, unknown>)[name],
      enumerable: Object.prototype.propertyIsEnumerable.call(error, name),
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 200;

/**
 * Lines go to stdout through a buffered, asynchronous writer: a synchronous write per line (pino's
 * default) cost a server about 30 microseconds of its event loop per request, measured on the token
 * endpoint, and an asynchronous write per line (a file system request through libuv's pool, with its
 * callback) still 12 to 17: each request's access line was written on its own whenever the previous
 * write had finished. So lines are written in batches of at least LOG_BATCH_BYTES (about twenty
 * access lines), and whatever is buffered at least every LOG_FLUSH_MS, so a quiet server's lines are
 * not held back longer than that. The batches are fed bytes: given strings, sonic-boom measures the
 * UTF-8 length of the whole batch so far at every line (1.5 to 2.5 µs a line, measured), given
 * Buffers it adds lengths. pino writes what is buffered when the process exits (a crash or
 * process.exit included; it registered the batches for that); a process killed with SIGKILL can
 * lose the last LOG_FLUSH_MS of lines.
 */
function stdoutInBatches(): pino.DestinationStream {
  const batches = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS, contentMode: 'buffer' });
  const destination: pino.DestinationStream & { flush(done?: (error?: Error) => void): void } = {
    write: (line: string) => batches.write(Buffer.from(line) as unknown as string),
    // What logger.flush() reaches: the lines that mark a process's life go out at once (main.ts, cli/serve.ts).
    flush: (done) => batches.flush(done),
  };
  return destination;
}

export function createLogger(level: LogLevel, destination: pino.DestinationStream = stdoutInBatches()): Logger {
  return pino({
    level,
    base: { service: 'tessera' },
    mixin: requestIdOfLine,
    formatters: { log: (object) => redact(object) },
  }, destination);
}

/** A fresh object each time: pino merges the line's own fields into what the mixin returns. */
function requestIdOfLine(): Record<string, string> {
  const request = currentRequest();
  return request ? { requestId: request.requestId } : {};
}

/** One access log line's fields (observability/http.ts): names from a fixed set, the path without its query. */
export interface AccessLine {
  requestId: string;
  method: string;
  route: string;
  path: string;
  status: number;
  ms: number;
}

/**
 * Writes access log lines: the line `logger.info({ ...fields }, 'request')` would write, byte for
 * byte (the same level, time, bindings, the request id the mixin adds, key order and message), but
 * built as one template string and handed to the logger's destination. pino's own path (mixin,
 * formatter, merge, serialising each key) cost 10 to 20 microseconds a line, on every request; the
 * fields here are strings escaped by JSON.stringify and numbers, none of them redacted keys. A
 * logger that is not a pino logger as createLogger makes it falls back to logger.info.
 */
export function accessLogWriter(logger: Logger): (line: AccessLine) => void {
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write?: (line: string) => unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  const level = logger.levels.values.info;
  if (typeof stream?.write !== 'function' || typeof bindings !== 'string' || internals[pino.symbols.mixinSym] !== requestIdOfLine) {
    return (line) => {
      if (logger.isLevelEnabled('info')) logger.info({ ...line }, 'request');
    };
  }
  const write = stream.write.bind(stream);
  return (line) => {
    if (!logger.isLevelEnabled('info')) return;
    write(`{"level":${level},"time":${Date.now()}${bindings},"requestId":${JSON.stringify(line.requestId)},"method":${JSON.stringify(line.method)},"route":${JSON.stringify(line.route)},"path":${JSON.stringify(line.path)},"status":${line.status},"ms":${line.ms},"msg":"request"}\n`);
  };
}
