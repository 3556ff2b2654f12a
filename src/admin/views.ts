/**
 * How Tessera's records look through the admin API: snake_case, times as ISO 8601, and nothing
 * secret (no password hash, no client secret, no session cookie value). The response schemas
 * (schemas.ts) strip anything else on the way out, as a second line.
 */
import { DEFAULT_ACCESS_TOKEN_SIGNING_ALG } from '../config.ts';
import { sessionHandle, type SessionView } from '../oidc/sessions-and-grants.ts';
import type { AuditEvent } from '../domain/audit.ts';
import { isLocked } from '../domain/lockout.ts';
import { registeredKind } from '../domain/registered-clients.ts';
import type { ResourceServer } from '../domain/resources.ts';
import type { SecondFactorSummary } from '../domain/second-factors.ts';
import type { Upstream } from '../domain/upstreams.ts';
import type { Account, FederatedIdentity } from '../store/port.ts';

/** An account as the admin API and `tessera users list` show it. */
export function accountView(account: Account) {
  return {
    sub: account.sub,
    email: account.email,
    email_verified: account.emailVerified,
    ...(account.name && { name: account.name }),
    ...(account.givenName && { given_name: account.givenName }),
    ...(account.familyName && { family_name: account.familyName }),
    disabled: account.disabled,
    roles: [...(account.roles ?? [])],
    /** Set while sign-in is blocked after failed attempts (`users unlock` lifts it). */
    ...(isLocked(account) && { locked_until: account.lockedUntil!.toISOString() }),
    created_at: account.createdAt.toISOString(),
    updated_at: account.updatedAt.toISOString(),
  };
}

export function userView(account: Account, secondFactor: boolean) {
  return { ...accountView(account), second_factor: secondFactor };
}

/** An identity at an upstream provider linked to an account (admin API, `tessera users list`). */
export function identityView(identity: FederatedIdentity) {
  return {
    upstream: identity.upstreamId,
    subject: identity.subject,
    ...(identity.email !== undefined && { email: identity.email }),
    linked_at: identity.createdAt.toISOString(),
  };
}

/** Never the client secret: it was shown to nobody after it was given, and is kept sealed. */
export function upstreamView(upstream: Upstream, redirectUri: string) {
  return {
    id: upstream.id,
    name: upstream.name,
    kind: upstream.kind,
    ...(upstream.preset && { preset: upstream.preset }),
    ...(upstream.issuer && { issuer: upstream.issuer }),
    ...(upstream.authorizationEndpoint && { authorization_endpoint: upstream.authorizationEndpoint }),
    ...(upstream.tokenEndpoint && { token_endpoint: upstream.tokenEndpoint }),
    ...(upstream.userEndpoint && { user_endpoint: upstream.userEndpoint }),
    ...(upstream.emailsEndpoint && { emails_endpoint: upstream.emailsEndpoint }),
    client_id: upstream.clientId,
    scopes: [...upstream.scopes],
    trust_email: upstream.trustEmail,
    source: upstream.source,
    redirect_uri: redirectUri,
  };
}

export function userDetailsView(account: Account, factors: SecondFactorSummary, identities: readonly FederatedIdentity[] = []) {
  return {
    ...userView(account, factors.enabled),
    password: Boolean(account.passwordHash),
    identities: identities.map(identityView),
    second_factors: {
      totp: factors.totp,
      passkeys: factors.passkeys.length,
      email_codes: factors.emailOtp,
      recovery_codes_left: factors.recoveryCodesLeft,
    },
  };
}

export { sessionHandle };

export function sessionView(session: SessionView) {
  return {
    id: sessionHandle(session.id),
    ...(session.signedInAt && { signed_in_at: session.signedInAt.toISOString() }),
    ...(session.lastActiveAt && { last_active_at: session.lastActiveAt.toISOString() }),
    ...(session.userAgent && { user_agent: session.userAgent }),
    ...(session.device && { device: session.device }),
    clients: session.apps,
  };
}

type ClientKind = 'relying_party' | 'machine' | 'resource_server';

export function clientKind(metadata: Record<string, unknown>): ClientKind {
  if (typeof metadata.tessera_resource_server === 'string') return 'resource_server';
  return Array.isArray(metadata.grant_types) && metadata.grant_types.includes('client_credentials') ? 'machine' : 'relying_party';
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.map(String) : undefined;
}

/** Listed fields only: the metadata itself may hold a (static, plaintext) client secret. */
export function clientView(client: { client_id: string; source: 'config' | 'store'; metadata: Record<string, unknown> }) {
  const { metadata } = client;
  const auth = typeof metadata.token_endpoint_auth_method === 'string' ? metadata.token_endpoint_auth_method : 'client_secret_basic';
  const keys = (metadata.jwks as { keys?: Array<Record<string, unknown>> } | undefined)?.keys ?? [];
  const kind = clientKind(metadata);
  return {
    client_id: client.client_id,
    ...(typeof metadata.client_name === 'string' && { client_name: metadata.client_name }),
    kind,
    source: client.source,
    token_endpoint_auth_method: auth,
    grant_types: strings(metadata.grant_types) ?? ['authorization_code'],
    ...(kind === 'relying_party' && {
      redirect_uris: strings(metadata.redirect_uris) ?? [],
      post_logout_redirect_uris: strings(metadata.post_logout_redirect_uris) ?? [],
      application_type: metadata.application_type === 'native' ? 'native' as const : 'web' as const,
    }),
    ...(metadata.tessera_resources !== undefined && { resources: metadata.tessera_resources as Record<string, string[]> }),
    ...(Array.isArray(metadata.tessera_roles) && { roles: strings(metadata.tessera_roles) }),
    ...(typeof metadata.tessera_resource_server === 'string' && { resource_server: metadata.tessera_resource_server }),
    ...(auth === 'self_signed_tls_client_auth' && { thumbprints: keys.map((key) => String(key.kid)) }),
    ...(auth === 'tls_client_auth' && Array.isArray(metadata.tessera_tls_subjects) && { tls_subjects: metadata.tessera_tls_subjects as Array<{ type: string; value: string }> }),
    ...(typeof metadata.jwks_uri === 'string' && { jwks_uri: metadata.jwks_uri }),
    ...(metadata.require_pushed_authorization_requests === true && { require_par: true }),
    ...(metadata.dpop_bound_access_tokens === true && { require_dpop: true }),
    ...(metadata.tls_client_certificate_bound_access_tokens === true && { certificate_bound: true }),
    ...(metadata.tessera_first_party === true && { first_party: true }),
    ...(metadata.tessera_require_mfa === true && { require_mfa: true }),
    ...(registeredKind(metadata) && { registered: registeredKind(metadata) }),
  };
}

export function resourceView(resource: ResourceServer & { source: 'builtin' | 'config' | 'store' }, clientId: string | undefined) {
  return {
    audience: resource.audience,
    ...(resource.name && { name: resource.name }),
    scopes: resource.scopes,
    format: resource.format,
    ttl: resource.ttlSeconds,
    ...(resource.scopeRoles && { scope_roles: resource.scopeRoles }),
    ...(resource.clients?.length && { clients: resource.clients }),
    ...(resource.format === 'jwt' && { signing_alg: resource.signingAlg ?? DEFAULT_ACCESS_TOKEN_SIGNING_ALG }),
    source: resource.source,
    ...(clientId && { client_id: clientId }),
  };
}

export function auditEventView(event: AuditEvent) {
  return {
    id: event.id,
    type: event.type,
    at: event.at.toISOString(),
    ...(event.sub !== undefined && { sub: event.sub }),
    ...(event.clientId !== undefined && { client_id: event.clientId }),
    ...(event.ip !== undefined && { ip: event.ip }),
    ...(event.requestId !== undefined && { request_id: event.requestId }),
    ...(event.details !== undefined && { details: { ...event.details } }),
  };
}
