/** What each scope and claim means, in the words the consent page shows a person. */

/** The scopes that belong to OpenID Connect (about the signed-in person) rather than to an API. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access', 'profile', 'email', 'roles']);

const SCOPE_WORDS: Record<string, string> = {
  openid: 'Know who you are when you sign in',
  profile: 'See your name',
  email: 'See your email address and whether it is verified',
  offline_access: 'Stay connected to your account when you are not using the app',
  roles: 'See the roles you have been given',
};

const CLAIM_WORDS: Record<string, string> = {
  sub: 'an identifier for your account',
  name: 'your full name',
  given_name: 'your given name',
  family_name: 'your family name',
  email: 'your email address',
  email_verified: 'whether your email address is verified',
  roles: 'your roles',
};

export interface ScopeDescription {
  scope: string;
  description: string;
}

export function describeScopes(scopes: Iterable<string>): ScopeDescription[] {
  return [...new Set(scopes)].map((scope) => ({ scope, description: SCOPE_WORDS[scope] ?? `Use the "${scope}" permission` }));
}

export function describeClaims(claims: Iterable<string>): string[] {
  return [...new Set(claims)]
    .filter((claim) => claim !== 'sub' && !['sid', 'auth_time', 'acr', 'amr', 'nonce', 'at_hash', 'c_hash'].includes(claim))
    .map((claim) => CLAIM_WORDS[claim] ?? claim);
}
