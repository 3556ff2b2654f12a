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

  return async function securityHeadersMiddleware(ctx: Context, next: Next) {
    if (ctx.secure) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await headers(ctx, next);
  };
}
