/**
 * The admin console (`/admin`) signs operators in the way any app does: through Tessera's own
 * authorization endpoint, as a built-in public client with PKCE, like the account page. It asks
 * for an access token for the admin API (resource indicator: the admin API's audience, scope
 * `admin`), so what an operator may do in the console is exactly what the admin API lets them do.
 *
 * - `tessera_require_mfa`: every sign-in to the console needs a second factor; an admin without one
 *   is asked to set one up before getting in.
 * - `tessera_first_party`: the operator's own tool, never a consent page.
 * - The audience must be admin/resource.ts's `adminAudience(issuer)`; it is spelled out here because
 *   oidc/ sits below admin/ in the layers. The console flow test fails if the two ever differ.
 */
export const CONSOLE_CLIENT_ID = 'tessera-console';
export const CONSOLE_PATH = '/admin';
export const CONSOLE_CALLBACK_PATH = '/admin/callback';

export function consoleAudience(issuer: string): string {
  return `${issuer}/admin/api`;
}

export function consoleClientMetadata(issuer: string): Record<string, unknown> {
  return {
    client_id: CONSOLE_CLIENT_ID,
    client_name: 'Tessera admin console',
    redirect_uris: [`${issuer}${CONSOLE_CALLBACK_PATH}`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'RS256',
    require_auth_time: true,
    tessera_first_party: true,
    tessera_require_mfa: true,
    tessera_resources: { [consoleAudience(issuer)]: ['admin'] },
  };
}
