/**
 * Per-request observation, kept cheap (it runs on every request, the token hot path included):
 * the request's context for logs and security events (request-context.ts), the latency histogram,
 * and one access log line. The line has the path WITHOUT the query string, where codes, tokens and
 * reset links travel; the route label is a name from a fixed set, never the URL (ids in paths would
 * make one time series per id).
 */
import { randomUUID } from 'node:crypto';

import type { Context, Middleware, Next } from 'koa';

import { accessLogWriter, type Logger } from '../log.ts';
import { runInRequest } from '../request-context.ts';
import type { Metrics } from './metrics.ts';

/** Paths Tessera serves outside oidc-provider and the routers, each its own route label. */
const FIXED_ROUTES = new Set(['/', '/healthz', '/readyz', '/metrics']);
const MAX_LOGGED_PATH = 200;
/** An X-Request-Id from the caller (a proxy, a client) is kept when it is this sane; else a fresh UUID. */
const SANE_REQUEST_ID = /^[\w.-]{1,64}$/;

/** Set by the routers: oidc-provider's names its route, @koa/router records the pattern that matched. */
interface RoutedContext {
  _matchedRouteName?: unknown;
  _matchedRoute?: unknown;
}

/**
 * The route a request went to: oidc-provider's route name (`token`, `authorization`, `userinfo`,
 * `jwks`...), else the matched router pattern (`/interaction/:uid/login`), else a fixed path, else
 * `unmatched`.
 */
export function routeOf(ctx: Context): string {
  // Not ctx.oidc.route: reading ctx.oidc would build oidc-provider's context where none was needed.
  const routed = ctx as unknown as RoutedContext;
  if (typeof routed._matchedRouteName === 'string') return routed._matchedRouteName;
  if (typeof routed._matchedRoute === 'string') return routed._matchedRoute;
  if (FIXED_ROUTES.has(ctx.path)) return ctx.path;
  if (ctx.path.startsWith('/assets/')) return '/assets/*';
  return 'unmatched';
}

export interface RequestObservationDependencies {
  logger: Logger;
  metrics: Metrics;
  /** The client's address after trusted proxies (RateLimits.address). */
  address(ctx: Context): string;
}

/**
 * The first middleware: gives the request its id (`ctx.state.requestId`, echoed as X-Request-Id), and
 * everything after it runs inside the request's context.
 */
export function observeRequests({ logger, metrics, address }: RequestObservationDependencies): Middleware {
  const writeAccessLine = accessLogWriter(logger);
  return async function observeRequest(ctx: Context, next: Next) {
    const started = performance.now();
    const incoming = ctx.get('X-Request-Id');
    const requestId = SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    let ip: string | undefined;
    const context = { requestId, ip: () => (ip ??= address(ctx)) };
    let status = 500;
    try {
      await runInRequest(context, next);
      status = ctx.status;
    } catch (error) {
      const { status: errorStatus, statusCode } = (error ?? {}) as { status?: unknown; statusCode?: unknown };
      status = typeof errorStatus === 'number' ? errorStatus : typeof statusCode === 'number' ? statusCode : 500;
      throw error;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const route = routeOf(ctx);
      metrics.observeRequest(route, status, seconds);
      writeAccessLine({
        requestId: context.requestId,
        method: ctx.method,
        route,
        path: ctx.path.length > MAX_LOGGED_PATH ? `${ctx.path.slice(0, MAX_LOGGED_PATH)}…` : ctx.path,
        status,
        ms: Math.round(seconds * 10_000) / 10,
      });
    }
  };
}
