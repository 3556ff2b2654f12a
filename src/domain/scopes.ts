/** What each scope and claim means, in the words (and the language) the consent page shows a person. */
import type { Translate } from '../i18n/catalogs.ts';

/** The scopes that belong to OpenID Connect (about the signed-in person) rather than to an API. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access', 'profile', 'email', 'roles']);

/** Scopes and claims with a sentence in the catalogs (`scopes.*`, `claims.*`). */
const KNOWN_CLAIMS = new Set(['sub', 'name', 'given_name', 'family_name', 'email', 'email_verified', 'roles']);
const TECHNICAL_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'nonce', 'at_hash', 'c_hash']);

export interface ScopeDescription {
  scope: string;
  description: string;
}

export function describeScopes(scopes: Iterable<string>, t: Translate): ScopeDescription[] {
  return [...new Set(scopes)].map((scope) => ({ scope, description: OIDC_SCOPES.has(scope) ? t(`scopes.${scope}`) : t('scopes.other', { scope }) }));
}

export function describeClaims(claims: Iterable<string>, t: Translate): string[] {
  return [...new Set(claims)]
    .filter((claim) => !TECHNICAL_CLAIMS.has(claim))
    .map((claim) => (KNOWN_CLAIMS.has(claim) ? t(`claims.${claim}`) : claim));
}
