/**
 * Security headers for every response. Pages get helmet's full set; the CSP allows no inline script
 * at all (oidc-provider adds a hash for its own form_post script when it needs one), and
 * `form-action` is deliberately absent: after a form POST the browser follows redirects to the
 * relying party's origin, and Chrome applies form-action to that whole redirect chain.
 *
 * Protocol endpoints that only ever answer JSON (token, introspection, JWKS, discovery...) get the
 * set OWASP's REST Security Cheat Sheet gives APIs instead: nothing may load or frame the answer,
 * no sniffing, no referrer. The document-only headers (cross-origin isolation, DNS prefetch, IE's
 * download and XSS switches) mean nothing on a JSON answer, and these are the responses machines
 * fetch thousands of times a second: half the header bytes of a token response were those.
 */
import type { Context, Middleware, Next } from 'koa';
import helmet from 'koa-helmet';

const API_HEADERS: ReadonlyArray<[string, string]> = [
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
];

const HSTS = 'max-age=31536000; includeSubDomains';

/** `answersOnlyJson`: requests whose answer is never a page (the protocol endpoints above). */
export function securityHeaders(answersOnlyJson: (ctx: Context) => boolean = () => false): Middleware {
  const headers = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'https:', 'data:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        'frame-ancestors': ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: false,
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  }) as unknown as Middleware;

  // Helmet works out the same headers for every request; koa-helmet re-runs it through a promise
  // each time. They are taken once here (helmet sets them synchronously) and set as they are.
  const fixed: Array<[string, string | string[]]> = [];
  const removed: string[] = [];
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      fixed.push([name, Array.isArray(value) ? [...value] : String(value)]);
    },
    removeHeader(name: string) {
      removed.push(name);
    },
    getHeader: () => undefined,
  };
  void headers({ req: { headers: {}, method: 'GET', url: '/' }, res: recorder } as unknown as Context, async () => {});
  if (!fixed.some(([name]) => name.toLowerCase() === 'content-security-policy')) {
    throw new Error('koa-helmet changed: its headers could not be taken at startup');
  }

  return function securityHeadersMiddleware(ctx: Context, next: Next) {
    const { res } = ctx;
    if (answersOnlyJson(ctx)) {
      for (const [name, value] of API_HEADERS) res.setHeader(name, value);
    } else {
      for (const [name, value] of fixed) res.setHeader(name, value);
      for (const name of removed) res.removeHeader(name);
    }
    if (isSecure(ctx)) res.setHeader('Strict-Transport-Security', HSTS);
    return next();
  };
}

/**
 * `ctx.secure`, without Koa's header parsing for the one value Tessera's edge sets (http/edge.ts
 * writes X-Forwarded-Proto as `https` or `http` on every request); anything else is left to Koa.
 */
function isSecure(ctx: Context): boolean {
  if ((ctx.req.socket as { encrypted?: boolean }).encrypted) return true;
  if (!ctx.app.proxy) return false;
  const proto = ctx.req.headers['x-forwarded-proto'];
  if (proto === 'https') return true;
  if (proto === 'http' || proto === undefined) return false;
  return ctx.secure;
}
