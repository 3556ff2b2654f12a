/**
 * `/readyz` and `/metrics` (`/healthz`, "the process answers", lives in app.ts).
 *
 * `/readyz` is 200 while the store answers a ping within READY_TIMEOUT_MS and the signing keys are
 * loaded, else 503: a load balancer stops sending traffic, and sends it again once the store is back.
 * Checks are shared for a second, so a flood of probes costs the store one ping a second.
 *
 * `/metrics` (Prometheus text) asks for `Authorization: Bearer METRICS_TOKEN` when one is set; without
 * one it is open outside production and not served in production (404, and a warning at startup):
 * sign-in and lockout rates, clients and traffic are for operators, not for anyone who asks.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import type { Context, Middleware, Next } from 'koa';

import { withDeadline } from '../store/outage.ts';
import type { Metrics } from './metrics.ts';

export const READY_TIMEOUT_MS = 1000;
const READY_CACHE_MS = 1000;

export interface Readiness {
  ready: boolean;
  checks: { store: 'ok' | 'unreachable'; keys: 'ok' | 'missing' };
}

export interface EndpointDependencies {
  metrics: Metrics;
  /** Throws when the store does not answer. */
  ping(): Promise<void>;
  keysLoaded(): boolean;
  metricsToken: string | undefined;
  production: boolean;
}

/** Whether /metrics is served at all with this configuration. */
export function metricsServed(metricsToken: string | undefined, production: boolean): boolean {
  return metricsToken !== undefined || !production;
}

export function observabilityEndpoints({ metrics, ping, keysLoaded, metricsToken, production }: EndpointDependencies): Middleware {
  const expected = metricsToken === undefined ? undefined : digest(metricsToken);
  const serveMetrics = metricsServed(metricsToken, production);
  let cached: { at: number; readiness: Promise<Readiness> } | undefined;

  function readiness(): Promise<Readiness> {
    const now = Date.now();
    if (cached && now - cached.at < READY_CACHE_MS) return cached.readiness;
    const check = (async (): Promise<Readiness> => {
      const store = await withDeadline(ping(), READY_TIMEOUT_MS, () => new Error(`no answer within ${READY_TIMEOUT_MS} ms`)).then(() => 'ok' as const, () => 'unreachable' as const);
      const keys = keysLoaded() ? 'ok' as const : 'missing' as const;
      return { ready: store === 'ok' && keys === 'ok', checks: { store, keys } };
    })();
    cached = { at: now, readiness: check };
    return check;
  }

  return async function observabilityEndpoint(ctx: Context, next: Next) {
    if (ctx.path === '/readyz') {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
      const result = await readiness();
      ctx.status = result.ready ? 200 : 503;
      ctx.set('Cache-Control', 'no-store');
      if (!result.ready) ctx.set('Retry-After', '5');
      ctx.body = { status: result.ready ? 'ready' : 'not_ready', checks: result.checks };
      return;
    }
    if (ctx.path === '/metrics' && serveMetrics) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
      ctx.set('Cache-Control', 'no-store');
      if (expected && !bearerMatches(ctx.get('Authorization'), expected)) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
        ctx.body = { error: 'unauthorized', error_description: 'Send Authorization: Bearer METRICS_TOKEN.' };
        return;
      }
      ctx.type = metrics.contentType;
      ctx.body = await metrics.render();
      return;
    }
    return next();
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Compared as digests: constant time, whatever the length of what was sent. */
function bearerMatches(header: string, expected: Buffer): boolean {
  const match = /^Bearer +(\S+)\s*$/i.exec(header);
  return match !== null && timingSafeEqual(digest(match[1]!), expected);
}

