/**
 * The request being handled, wherever code runs on its behalf: every log line of a request carries
 * its id (log.ts) and every security event its id and address (domain/events.ts), without passing
 * the Koa context down through the domain. Set once per request by app.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestContext {
  /** X-Request-Id: the caller's when it sent a sane one, else a fresh UUID. */
  readonly requestId: string;
  /** The client's address after trusted proxies; computed on first use. */
  ip(): string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runInRequest<T>(context: RequestContext, work: () => T): T {
  return storage.run(context, work);
}

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}
