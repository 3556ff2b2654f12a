/**
 * CSRF protection for Tessera's own forms (synchronizer tokens from the `csrf` package). The secret
 * lives in a signed, httpOnly cookie; each page embeds a token derived from it and each POST must
 * echo one back. oidc-provider's own forms (logout) carry its `xsrf` token instead.
 *
 * A token is also bound to the session it was made in (OWASP's signed double-submit cookie): it is
 * derived from the secret together with the interaction this page belongs to, or else the Tessera
 * session, both read from oidc-provider's signed cookies. So a secret and token pair taken from
 * another session (someone's own, planted through a sibling subdomain) does not pass. Over TLS the
 * cookie is `__Host-` (cookie-names.ts), which a sibling subdomain cannot set in the first place.
 */
import Tokens from 'csrf';
import type { Context, Next } from 'koa';

import { AppError } from '../errors.ts';
import { CSRF_COOKIE, hostCookieName, providerCookieNames } from './cookie-names.ts';
import { equalInConstantTime } from './cookie-signing.ts';

const tokens = new Tokens();
/** csrf's own token for a secret and salt (what its verify computes before comparing through tsscmp). */
const tokenize = (tokens as unknown as { _tokenize(secret: string, salt: string): string })._tokenize.bind(tokens);

/** csrf's verify, with the comparison made by timingSafeEqual instead of tsscmp's two extra HMACs (cookie-signing.ts). */
function verifyToken(secret: string, token: string): boolean {
  const salt = token.indexOf('-');
  return salt > 0 && equalInConstantTime(tokenize(secret, token.slice(0, salt)), token);
}

/**
 * What this request's session is: the interaction (its cookie is sent only to its own pages), else
 * the Tessera session, else nothing (a page before any session, such as "forgot password").
 */
function sessionBinding(ctx: Context): string {
  const names = providerCookieNames(ctx.secure);
  const interaction = ctx.cookies.get(names.interaction, { signed: true });
  if (interaction) return `interaction:${interaction}`;
  const session = ctx.cookies.get(names.session, { signed: true });
  return session ? `session:${session}` : 'none';
}

export async function csrfProtection(ctx: Context, next: Next): Promise<void> {
  const cookie = hostCookieName(ctx, CSRF_COOKIE);
  let secret = ctx.cookies.get(cookie, { signed: true });
  if (!secret) {
    if (ctx.method === 'POST') throw csrfError();
    secret = tokens.secretSync();
    ctx.cookies.set(cookie, secret, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
  }
  const bound = `${secret}|${sessionBinding(ctx)}`;
  if (ctx.method === 'POST') {
    const token = (ctx.request.body as Record<string, unknown> | undefined)?._csrf;
    if (typeof token !== 'string' || !verifyToken(bound, token)) throw csrfError();
  }
  ctx.state.csrfToken = tokens.create(bound);
  await next();
}

function csrfError(): AppError {
  return new AppError('ERR_CSRF', 'This form expired or did not come from this site. Go back, reload the page and try again.');
}
