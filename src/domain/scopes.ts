/** What each scope and claim means, in the words (and the language) the consent page shows a person. */
import type { Translate } from '../i18n/catalogs.ts';

/** Scopes and claims with a sentence in the catalogs (`scopes.*`, `claims.*`). */
const KNOWN_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access', 'roles']);
const KNOWN_CLAIMS = new Set(['sub', 'name', 'given_name', 'family_name', 'email', 'email_verified', 'roles']);
const TECHNICAL_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'nonce', 'at_hash', 'c_hash']);

export interface ScopeDescription {
  scope: string;
  description: string;
}

export function describeScopes(scopes: Iterable<string>, t: Translate): ScopeDescription[] {
  return [...new Set(scopes)].map((scope) => ({ scope, description: KNOWN_SCOPES.has(scope) ? t(`scopes.${scope}`) : t('scopes.other', { scope }) }));
}

export function describeClaims(claims: Iterable<string>, t: Translate): string[] {
  return [...new Set(claims)]
    .filter((claim) => !TECHNICAL_CLAIMS.has(claim))
    .map((claim) => (KNOWN_CLAIMS.has(claim) ? t(`claims.${claim}`) : claim));
}
