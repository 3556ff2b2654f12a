/**
 * Security headers for every response, pages and protocol endpoints alike. The CSP allows no inline
 * script at all (oidc-provider adds a hash for its own form_post script when it needs one).
 * `form-action` is deliberately absent: after a form POST the browser follows redirects to the
 * relying party's origin, and Chrome applies form-action to that whole redirect chain.
 */
import type { Context, Middleware, Next } from 'koa';
import helmet from 'koa-helmet';

export function securityHeaders(): Middleware {
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

  return async function securityHeadersMiddleware(ctx: Context, next: Next) {
    const { res } = ctx;
    for (const [name, value] of fixed) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
    if (ctx.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}
