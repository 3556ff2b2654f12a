/**
 * THE list of Tessera's protocol features. A new feature is one module beside this one and one
 * line here; the lists Tessera keeps beside oidc-provider (the protocol fast path, the
 * client-authenticating paths, mTLS aliases, the routes where offline_access asks for consent) are
 * derived from it below, so none of them can be forgotten.
 */
import { authorization } from './authorization.ts';
import { backchannelLogout } from './backchannel-logout.ts';
import { clientIdMetadataDocuments } from './client-id-metadata-document.ts';
import { deviceFlow } from './device-flow.ts';
import { documents } from './documents.ts';
import { dpop } from './dpop.ts';
import type { Slice } from './feature.ts';
import { introspectionAndRevocation } from './introspection.ts';
import { logout } from './logout.ts';
import { mtls } from './mtls.ts';
import { outgoingRequests } from './outgoing-requests.ts';
import { pushedAuthorizationRequests } from './par.ts';
import { dynamicClientRegistration } from './registration.ts';
import { resourceIndicators } from './resource-indicators.ts';
import { tokenEndpoint } from './token-endpoint.ts';
import { userinfo } from './userinfo.ts';

export const SLICES: readonly Slice[] = [
  documents,
  authorization,
  tokenEndpoint,
  userinfo,
  introspectionAndRevocation,
  pushedAuthorizationRequests,
  resourceIndicators,
  mtls,
  dpop,
  logout,
  dynamicClientRegistration,
  clientIdMetadataDocuments,
  outgoingRequests,
  deviceFlow,
  backchannelLogout,
];

const PATHS = SLICES.flatMap((slice) => slice.paths ?? []);

/** The protocol fast path (app.ts): machine-called, JSON-only endpoints that skip the page middleware. */
export const PROTOCOL_PATHS: ReadonlySet<string> = new Set(PATHS.filter((path) => path.fastPath).map((path) => path.path));

/** Discovery and JWKS: answered with Cache-Control so RPs may cache them. */
export const PUBLIC_DOCUMENT_PATHS: ReadonlySet<string> = new Set(PATHS.filter((path) => path.publicDocument).map((path) => path.path));

/**
 * Endpoints that authenticate a client (a secret, an assertion or a certificate): an expired
 * certificate is refused there outright (client-certificates.ts), and failures there count against
 * rate limits (http/rate-limit.ts).
 */
export const CLIENT_AUTHENTICATING_PATHS: ReadonlySet<string> = new Set(PATHS.filter((path) => path.authenticatesClient).map((path) => path.path));

/** oidc-provider routes where a person's interaction starts or resumes (internals.ts, offlineAccessAsksConsent). */
export const INTERACTION_ROUTES: ReadonlySet<string> = new Set(SLICES.flatMap((slice) => slice.interactionRoutes ?? []));

/** Discovery's `mtls_endpoint_aliases` for an mTLS listener at `baseUrl` (RFC 8705 section 5). */
export function mtlsEndpointAliases(baseUrl: string): Record<string, string> {
  return Object.fromEntries(PATHS.filter((path) => path.mtlsAlias).map((path) => [path.mtlsAlias!, `${baseUrl}${path.path}`]));
}
