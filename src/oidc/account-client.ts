/**
 * The account page signs people in the way any app does: through Tessera's own authorization
 * endpoint, as a built-in public client with PKCE. Being first-party, it never asks for consent
 * (see loadExistingGrant in oidc/configuration.ts) and only ever asks for `openid`. It lives here,
 * below the account page, because the provider's configuration registers it.
 */
export const ACCOUNT_CLIENT_ID = 'tessera-account';
export const ACCOUNT_CALLBACK_PATH = '/account/callback';

export function accountClientMetadata(issuer: string): Record<string, unknown> {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'Your Tessera account',
    redirect_uris: [`${issuer}${ACCOUNT_CALLBACK_PATH}`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'RS256',
    require_auth_time: true,
  };
}
