/**
 * CSRF protection for Tessera's own forms (synchronizer tokens from the `csrf` package). The secret
 * lives in a signed, httpOnly cookie; each page embeds a token derived from it and each POST must
 * echo one back. oidc-provider's own forms (logout) carry its `xsrf` token instead.
 */
import Tokens from 'csrf';
import type { Context, Next } from 'koa';

import { AppError } from '../errors.ts';

const COOKIE = 'tessera.csrf';
const tokens = new Tokens();

export async function csrfProtection(ctx: Context, next: Next): Promise<void> {
  let secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret) {
    if (ctx.method === 'POST') throw csrfError();
    secret = tokens.secretSync();
    ctx.cookies.set(COOKIE, secret, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
  }
  if (ctx.method === 'POST') {
    const token = (ctx.request.body as Record<string, unknown> | undefined)?._csrf;
    if (typeof token !== 'string' || !tokens.verify(secret, token)) throw csrfError();
  }
  ctx.state.csrfToken = tokens.create(secret);
  await next();
}

function csrfError(): AppError {
  return new AppError('ERR_CSRF', 'This form expired or did not come from this site. Go back, reload the page and try again.', { status: 403 });
}
