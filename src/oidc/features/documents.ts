/**
 * Discovery and the JWKS: public, rarely changing, fetched by every RP and resource server.
 *
 * oidc-provider builds both documents again for every request (discovery walks its whole
 * configuration, the JWKS copies the key set) and Koa serializes them to JSON each time, although
 * they change only with the keys or the configuration, and both of those change only by replacing
 * the provider instance (provider-host.ts rebuilds it when the key set moves). So the first answer
 * oidc-provider gives after a change is kept as its JSON text with a strong ETag, per provider instance and
 * origin, and every later GET or HEAD is answered from it: `304 Not Modified` when If-None-Match
 * names the current ETag. The answer carries the same headers as oidc-provider's own (its type, its
 * CORS headers) and, like before, the security headers and Cache-Control the app sets around it.
 */
import { hash } from 'node:crypto';

import type { Context } from 'koa';

import { SUPPORTED_LOCALES } from '../../i18n/locales.ts';
import type { Slice } from './feature.ts';

export const documents: Slice = {
  name: 'discovery and JWKS',
  paths: [
    { path: '/jwks', fastPath: true, publicDocument: true },
    { path: '/.well-known/openid-configuration', fastPath: true, publicDocument: true },
  ],
  // The languages of every page and mail (locales/): an RP may ask for one with `ui_locales`.
  configure: () => ({ discovery: { ui_locales_supported: [...SUPPORTED_LOCALES] } }),
};

/**
 * RFC 9110 section 13.1.2: If-None-Match compares weakly and `*` matches any current document.
 * Not Koa's `ctx.fresh`: that is a cache's view, which refuses a 304 whenever the request says
 * `Cache-Control: no-cache`, and fetch() adds exactly that to every request with If-None-Match.
 */
function matchesIfNoneMatch(header: string, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}

interface PreparedDocument {
  /**
   * A string, not a Buffer: Node writes a string body in the same socket write as the headers,
   * a Buffer in a second one (two TCP segments, the client woken twice: 40 µs of a JWKS request here).
   */
  readonly body: string;
  readonly type: string;
  readonly etag: string;
  /** oidc-provider's name for the route (`jwks`, `discovery`): the access log and metrics label it by that. */
  readonly route: unknown;
}

/** Where oidc-provider's router leaves the route's name (helpers/router.js), which observability/http.ts reads. */
interface RoutedContext {
  _matchedRouteName?: unknown;
}

/**
 * Serves the public documents from bytes prepared once per provider instance. `currentProvider`
 * names the instance in use (a new one after every key or configuration change); `render` lets
 * oidc-provider answer the request itself, which it does only when nothing is prepared yet.
 */
export function preparedDocuments(currentProvider: () => object) {
  let preparedFor: object | undefined;
  let prepared = new Map<string, PreparedDocument>();

  return async function servePreparedDocument(ctx: Context, render: () => Promise<unknown>): Promise<void> {
    const provider = currentProvider();
    if (provider !== preparedFor) {
      preparedFor = provider;
      prepared = new Map();
    }
    // The origin is part of the key: the mTLS listener's discovery names its own endpoint URLs.
    const key = `${ctx.origin}${ctx.path}`;
    let document = prepared.get(key);
    if (!document) {
      await render();
      // Errors (a store outage while the provider is rebuilt) and anything unexpected pass through as they are.
      if (ctx.status !== 200 || ctx.body === null || typeof ctx.body !== 'object' || Buffer.isBuffer(ctx.body)) return;
      const body = JSON.stringify(ctx.body);
      document = {
        body,
        type: ctx.response.get('Content-Type') || 'application/json; charset=utf-8',
        etag: `"${hash('sha256', body, 'base64url')}"`,
        route: (ctx as RoutedContext)._matchedRouteName,
      };
      // Only the instance that rendered it may keep it: a rotation during the render leaves nothing stale behind.
      if (currentProvider() === provider) prepared.set(key, document);
    } else {
      (ctx as RoutedContext)._matchedRouteName = document.route;
      // What oidc-provider's open CORS policy sets on these two documents (shared/cors.js, CORS.open).
      ctx.vary('Origin');
      ctx.set('Access-Control-Allow-Origin', ctx.get('Origin') || '*');
    }
    ctx.status = 200;
    ctx.set('ETag', document.etag);
    if (matchesIfNoneMatch(ctx.get('If-None-Match'), document.etag)) {
      ctx.status = 304;
      return;
    }
    ctx.type = document.type;
    ctx.body = document.body;
  };
}
