/**
 * Clients that come by themselves: registered over RFC 7591 (`dynamic`) or known by the URL of
 * their metadata document (`metadata_document`). Nobody checked who they are, so whatever they
 * say about themselves meets one policy, in both DYNAMIC_CLIENT_REGISTRATION modes:
 * - redirect URIs are https, http on loopback, or a private-use scheme (RFC 8252): nothing that
 *   sends codes over the network in the clear;
 * - the code flow (and refresh) only: never client_credentials, which would let anyone mint
 *   themselves a machine identity;
 * - none of Tessera's own metadata (`tessera_resources`, `tessera_first_party`, roles...): those
 *   are what an operator grants, and granting them to oneself would reach the admin API's audience;
 * - OpenID Connect scopes (openid, profile, email, offline_access, roles) only from
 *   DYNAMIC_CLIENT_REGISTRATION_SCOPES; an API's scopes are the API's to give, checked against the
 *   registered resource servers at every authorization and token request (an MCP client registers
 *   with the scopes its server's protected resource metadata lists).
 * Such a client is marked (`tessera_registered`), which the consent page, `clients list` and the
 * admin API show.
 */
import { redirectUriProblem } from './clients.ts';
import { OIDC_SCOPES } from './scopes.ts';

export const REGISTERED_METADATA = 'tessera_registered';
export type RegisteredKind = 'dynamic' | 'metadata_document';

/** The grants a client that registered itself may use. */
const SELF_REGISTERED_GRANTS = new Set(['authorization_code', 'refresh_token']);

/** Tessera's metadata that the operator grants; a registrant may not name any of it. */
const OPERATOR_METADATA = ['tessera_resources', 'tessera_tls_subjects', 'tessera_resource_server', 'tessera_roles', 'tessera_first_party', 'tessera_require_mfa'];

export interface RegistrationPolicy {
  /** OpenID Connect scopes such a client may ask for. */
  readonly scopes: readonly string[];
}

/** What is wrong with metadata a client gave about itself (empty: acceptable). Pure: no store. */
export function selfRegistrationProblems(metadata: Record<string, unknown>, policy: RegistrationPolicy): string[] {
  const problems: string[] = [];
  const uris = [
    ...(Array.isArray(metadata.redirect_uris) ? metadata.redirect_uris : []),
    ...(Array.isArray(metadata.post_logout_redirect_uris) ? metadata.post_logout_redirect_uris : []),
  ];
  for (const uri of uris) {
    const problem = redirectUriProblem(String(uri), true);
    if (problem) problems.push(`redirect URI ${problem}`);
  }
  const grants = Array.isArray(metadata.grant_types) ? metadata.grant_types.map(String) : [];
  if (grants.includes('client_credentials')) problems.push('grant_types: client_credentials is not available to registered clients');
  const unknownGrants = grants.filter((grant) => grant !== 'client_credentials' && !SELF_REGISTERED_GRANTS.has(grant));
  if (unknownGrants.length) problems.push(`grant_types: ${unknownGrants.join(', ')} not available to registered clients`);
  for (const name of OPERATOR_METADATA) {
    if (metadata[name] !== undefined) problems.push(`${name} is set by the operator, not by registration`);
  }
  if (typeof metadata.scope === 'string') {
    const refused = metadata.scope.split(' ').filter((scope) => OIDC_SCOPES.has(scope) && !policy.scopes.includes(scope));
    if (refused.length) problems.push(`scope: ${refused.join(' ')} not allowed (allowed: ${policy.scopes.join(' ')})`);
  }
  return problems;
}

export function registeredKind(metadata: Record<string, unknown> | undefined): RegisteredKind | undefined {
  const kind = metadata?.[REGISTERED_METADATA];
  return kind === 'dynamic' || kind === 'metadata_document' ? kind : undefined;
}

/**
 * The one host its redirect URIs send people to, for the consent page: a client's name is
 * whatever it said, the host is where the code goes.
 */
export function redirectHosts(redirectUris: readonly string[]): string[] {
  const hosts = redirectUris.map((uri) => {
    try {
      const url = new URL(uri);
      return url.host || `${url.protocol}`;
    } catch {
      return uri;
    }
  });
  return [...new Set(hosts)];
}
