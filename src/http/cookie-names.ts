/**
 * Cookie names, prefixed over TLS so a browser enforces what the name promises (RFC 6265bis 4.1.3):
 * a `__Host-` cookie must be Secure, have Path=/ and no Domain, so no sibling subdomain (and no
 * plain-http page) can plant or overwrite it; `__Secure-` only demands Secure, for cookies that need
 * a narrower path. Without TLS (development, tests on http) the plain names are used: a prefixed
 * cookie without Secure would be dropped by the browser.
 */
import type { Context } from 'koa';

export const CSRF_COOKIE = 'tessera.csrf';
export const ACCOUNT_SESSION_COOKIE = 'tessera.account';
export const ACCOUNT_SIGN_IN_COOKIE = 'tessera.account.signin';
/** The language a person picked with the switcher (http/locale.ts): not a secret, not signed. */
export const LANGUAGE_COOKIE = 'tessera.lang';

/** The name of one of Tessera's own Path=/ cookies for this request: `__Host-` when it came over TLS. */
export function hostCookieName(ctx: Pick<Context, 'secure'>, name: string): string {
  return ctx.secure ? `__Host-${name}` : name;
}

/** The upstream sign-in's browser binding; Path=/federation/, so over TLS it can only be `__Secure-`. */
export const UPSTREAM_FLOW_COOKIE = 'tessera.upstream';

/** The name of one of Tessera's own cookies with a narrower path than /: `__Secure-` when the request came over TLS. */
export function secureCookieName(ctx: Pick<Context, 'secure'>, name: string): string {
  return ctx.secure ? `__Secure-${name}` : name;
}

export interface ProviderCookieNames {
  session: string;
  interaction: string;
  resume: string;
}

/**
 * oidc-provider's cookies (its `cookies.names`). The session cookie has Path=/ and takes `__Host-`;
 * the interaction cookie is limited to /interaction/<uid> and the resume cookie to /auth/<uid>, and
 * `__Host-` requires Path=/, so those two can only be `__Secure-`.
 */
export function providerCookieNames(overTls: boolean): ProviderCookieNames {
  return overTls
    ? { session: '__Host-session', interaction: '__Secure-interaction', resume: '__Secure-interaction_resume' }
    : { session: '_session', interaction: '_interaction', resume: '_interaction_resume' };
}
