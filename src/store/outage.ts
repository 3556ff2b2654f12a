/**
 * What a caller sees when the store cannot answer: every backend's "unreachable, timed out, busy"
 * failures become one AppError, ERR_STORE_UNAVAILABLE (503), which the HTTP layer answers with
 * `503` and `Retry-After` instead of a 500. A request never waits for the store longer than a bound:
 * a driver that keeps waiting (a partitioned MongoDB answers nothing, and the driver notices only
 * after its own monitor gives up) is outrun by a deadline on each call.
 *
 * Each backend wraps the Store it builds with guardStore(), naming its own unavailable errors; the
 * repositories themselves stay free of this concern, and new repositories are covered unchanged.
 */
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

import { isAppError } from '../errors.ts';
import type { Store } from './port.ts';
import { storeUnavailableError } from './store-errors.ts';

export interface GuardOptions {
  /** Whether a backend error means the store is unreachable or unusable for now (not a bug, not bad input). */
  isUnavailable(error: unknown): boolean;
  /**
   * Longest wait for one call, in milliseconds; undefined for none (SQLite calls are synchronous, so a
   * timer could not fire before them anyway; SQLite's busy timeout bounds them).
   */
  deadlineMs?: number | undefined;
  /** A message naming what is wrong, for failures the operator must act on (a damaged file); the generic one otherwise. */
  describe?(error: unknown): string | undefined;
  /** Calls exempt from the deadline, as `repository.method`: they bound their own waits (a lock wait). */
  unbounded?: readonly string[];
}

/** True for the error guardStore() raises, whoever passes it on. */
export function isStoreUnavailable(error: unknown): boolean {
  return isAppError(error, 'ERR_STORE_UNAVAILABLE');
}

const LIMITER_METHODS = new Set(['consume', 'get', 'set', 'penalty', 'reward', 'block', 'delete']);

export function guardStore<S extends Store>(store: S, options: GuardOptions): S {
  const unbounded = new Set(options.unbounded ?? []);

  function convert(error: unknown, what: string): never {
    if (isAppError(error) || !options.isUnavailable(error)) throw error;
    throw storeUnavailableError(options.describe?.(error) ?? `The store is unavailable (${what}).`, error);
  }

  function guardCall<A extends unknown[], R>(what: string, call: (...args: A) => R): (...args: A) => R {
    const deadlineMs = unbounded.has(what) ? undefined : options.deadlineMs;
    return function guarded(...args: A): R {
      let result: R;
      try {
        result = call(...args);
      } catch (error) {
        return convert(error, what);
      }
      if (!(result instanceof Promise)) return result;
      const settled = result.catch((error: unknown) => convert(error, what));
      if (deadlineMs === undefined) return settled as R;
      // An abandoned call still settles later (the driver's own timeouts end it); its outcome is dropped.
      return withDeadline(settled, deadlineMs, () => storeUnavailableError(`The store did not answer within ${deadlineMs} ms (${what}).`)) as R;
    };
  }

  function guardRepository<T extends object>(name: string, repository: T): T {
    const guarded: Record<string, unknown> = {};
    for (const key of Object.keys(repository)) {
      const value = (repository as Record<string, unknown>)[key];
      guarded[key] = typeof value === 'function' ? guardCall(`${name}.${key}`, value.bind(repository)) : value;
    }
    return guarded as T;
  }

  /** Over its limit, a limiter rejects with a RateLimiterRes: not an error, so it passes through convert() untouched. */
  function guardLimiter(limiter: RateLimiterAbstract): RateLimiterAbstract {
    const methods = new Map<string, unknown>();
    return new Proxy(limiter, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof property !== 'string' || !LIMITER_METHODS.has(property) || typeof value !== 'function') return value;
        let method = methods.get(property);
        if (method === undefined) {
          method = guardCall(`rateLimiter.${property}`, (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args));
          methods.set(property, method);
        }
        return method;
      },
    });
  }

  const guarded: Record<string, unknown> = {};
  for (const key of Object.keys(store)) {
    const value = (store as Record<string, unknown>)[key];
    if (key === 'close' || typeof value !== 'object' && typeof value !== 'function') {
      guarded[key] = typeof value === 'function' ? value.bind(store) : value;
    } else if (key === 'rateLimiter') {
      const create = value as Store['rateLimiter'];
      guarded[key] = (limiterOptions: Parameters<Store['rateLimiter']>[0]) => guardLimiter(create.call(store, limiterOptions));
    } else if (typeof value === 'function') {
      guarded[key] = guardCall(key, value.bind(store));
    } else {
      guarded[key] = guardRepository(key, value as object);
    }
  }
  return guarded as S;
}

/** `work`, or a rejection with `timeoutError()` once `milliseconds` pass first (the timer never keeps the process alive). */
export function withDeadline<T>(work: Promise<T>, milliseconds: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError()), milliseconds);
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
