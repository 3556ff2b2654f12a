/**
 * The one place that says how Tessera speaks OAuth and OpenID Connect: which flows, features, TTLs,
 * claims and client authentication methods. Everything here follows RFC 9700 and OIDC Core:
 * code flow only, PKCE S256 for every client, exact redirect URI matching, single-use codes,
 * rotating refresh tokens with reuse detection, `iss` in authorization responses.
 */
import type { X509Certificate } from 'node:crypto';

import type { ClientMetadata, Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { errors, interactionPolicy } from 'oidc-provider';

import { ACCOUNT_CLIENT_ID, accountClientMetadata } from '../account/client.ts';
import { ConfigError, type Config } from '../config.ts';
import { CLAIMS_BY_SCOPE, claimsOf, type AccountService } from '../domain/accounts.ts';
import { chainsTo, parseBundle, subjectMatches, tlsSubjectProblem, type TlsSubject, type TlsSubjectType, TLS_SUBJECT_METADATA } from '../domain/certificates.ts';
import { jwksUriProblem, TESSERA_CLIENT_METADATA } from '../domain/clients.ts';
import type { KeyMaterial } from '../domain/keys.ts';
import { ACR_MULTI_FACTOR, ACR_VALUES, multiFactorRequired, REQUIRE_MFA_METADATA, SECOND_FACTOR_REASON } from '../domain/mfa/assurance.ts';
import type { ResourceService } from '../domain/resources.ts';
import { hasRoleLimits, scopesForRoles } from '../domain/roles.ts';
import { providerCookieNames } from '../http/cookie-names.ts';
import { renderPage } from '../http/render.ts';
import type { AdapterConstructor } from './adapter.ts';
import { presentedCertificate, type PresentedCertificate } from './client-certificates.ts';
import { deviceFlow, deviceFlowFeature, deviceFlowTtl } from './features/device-flow.ts';

export interface ConfigurationDependencies {
  config: Config;
  accounts: AccountService;
  resources: ResourceService;
  keys: KeyMaterial;
  adapter: AdapterConstructor;
  staticClients: Record<string, unknown>[];
  /** Public base URL of the mTLS listener, when there is one. */
  mtlsBaseUrl: string | undefined;
}

const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email', 'roles']);

type ClientLike = { clientId: string; metadata(): ClientMetadata; clientAuthMethod?: string };

/**
 * oidc-provider's `client.metadata()` rebuilds the whole metadata object (every property, snake_cased)
 * on each call, and the token path asks it several times per request. A Client never changes once
 * built (a changed client is a new instance), so its metadata is built once; callers only read it.
 */
const metadataByClient = new WeakMap<object, ClientMetadata>();

function metadataOf(client: ClientLike): ClientMetadata {
  let metadata = metadataByClient.get(client);
  if (!metadata) {
    metadata = client.metadata();
    metadataByClient.set(client, metadata);
  }
  return metadata;
}

function allowedResources(client: ClientLike): Record<string, string[]> {
  return (metadataOf(client).tessera_resources as Record<string, string[]> | undefined) ?? {};
}

const allowedScopesByClient = new WeakMap<object, Set<string>>();

/** Every scope a client may ask for at any of its resources (built once per client, like its metadata). */
function allowedScopes(client: ClientLike): Set<string> {
  let scopes = allowedScopesByClient.get(client);
  if (!scopes) {
    scopes = new Set(Object.values(allowedResources(client)).flat());
    allowedScopesByClient.set(client, scopes);
  }
  return scopes;
}

/**
 * The roles of whoever the token would be for, when the resource limits scopes to roles: a machine
 * client's own (`tessera_roles` metadata) for client credentials, otherwise the signed-in person's.
 * Undefined while nobody is known (before sign-in, a pushed request): limited scopes are withheld.
 */
async function holderRoles(accounts: AccountService, ctx: KoaContextWithOIDC, client: ClientLike, machine: boolean): Promise<string[] | undefined> {
  if (machine) {
    const roles = metadataOf(client).tessera_roles;
    return Array.isArray(roles) ? roles.map(String) : undefined;
  }
  const sub = ctx.oidc.account?.accountId ?? ctx.oidc.session?.accountId;
  if (!sub) return undefined;
  const account = await accounts.findBySub(sub);
  return account && !account.disabled ? account.roles : undefined;
}

/**
 * OpenID Connect scopes (openid, profile, offline_access...) are about a signed-in person, and the
 * client credentials grant has none: asking for one there is invalid_scope, where oidc-provider
 * would issue a token carrying `openid` (or, with a resource, silently drop it). Checked both
 * where a resource is named (resourceServerInfo) and where none is (defaultResource).
 */
function refusePersonScopes(ctx: KoaContextWithOIDC): void {
  const params = ctx.oidc.params as Record<string, unknown> | undefined;
  if (ctx.oidc.route !== 'token' || params?.grant_type !== 'client_credentials' || typeof params.scope !== 'string') return;
  const personScopes = params.scope.split(' ').filter((scope) => OIDC_SCOPES.has(scope));
  if (personScopes.length) throw new errors.InvalidScope('OpenID Connect scopes need a signed-in person, and the client credentials grant has none', personScopes.join(' '));
}

/**
 * Which access tokens a client may get for a resource server: only the scopes both the resource
 * offers and the client was allowed. Asking for any other API scope fails with invalid_scope
 * (oidc-provider alone would silently drop it), and so does an OpenID Connect scope such as
 * `openid` with the client credentials grant. A scope the resource limits to roles is offered
 * only when the holder has one of them: a person without it is simply not granted it (the token
 * response's `scope` says what was), a machine client asking for it explicitly gets invalid_scope.
 * This runs again at every token request, so a role taken away stops the next refresh too.
 */
async function resourceServerInfo(resources: ResourceService, accounts: AccountService, ctx: KoaContextWithOIDC, indicator: string, client: ClientLike) {
  const resource = await resources.find(indicator);
  if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  const allowed = allowedResources(client);
  const clientScopes = allowed[indicator];
  if (!clientScopes) throw new errors.InvalidTarget(`this client may not request tokens for ${indicator}`);
  const everyAllowedScope = allowedScopes(client);
  const params = ctx.oidc.params as Record<string, unknown> | undefined;
  const machine = ctx.oidc.route === 'token' && params?.grant_type === 'client_credentials';
  const permitted = resource.scopes.filter((scope) => clientScopes.includes(scope));
  const available = hasRoleLimits(resource.scopeRoles)
    ? scopesForRoles(permitted, resource.scopeRoles, await holderRoles(accounts, ctx, client, machine))
    : permitted;
  // RFC 6749 section 3.3: without a scope the server uses a documented default. Tessera's default for
  // a machine client is everything it is allowed at that resource (oidc-provider would issue none).
  if (params && machine && params.scope === undefined) {
    params.scope = available.join(' ');
  }
  const requested = typeof params?.scope === 'string' ? params.scope.split(' ') : [];
  if (machine) refusePersonScopes(ctx);
  const refused = requested.filter((scope) => scope && !OIDC_SCOPES.has(scope) && !everyAllowedScope.has(scope));
  if (refused.length) throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));
  if (machine) {
    const withheld = requested.filter((scope) => permitted.includes(scope) && !available.includes(scope));
    if (withheld.length) throw new errors.InvalidScope('requested scope is limited to roles the client does not hold', withheld.join(' '));
  }
  return {
    scope: available.join(' '),
    audience: resource.audience,
    accessTokenTTL: resource.ttlSeconds,
    accessTokenFormat: resource.format,
    ...(resource.format === 'jwt' && { jwt: { sign: { alg: 'RS256' as const } } }),
  };
}

/**
 * oidc-provider asks for a resource server's info more than once while handling one token request
 * (checking the resource, then issuing); the answer cannot change within a request, so it is worked
 * out once per request, resource and client.
 */
const RESOURCE_INFO = Symbol('tessera.resourceServerInfo');

function resourceServerInfoOnce(resources: ResourceService, accounts: AccountService, ctx: KoaContextWithOIDC, indicator: string, client: ClientLike) {
  const state = ctx.state as Record<symbol, Map<string, ReturnType<typeof resourceServerInfo>> | undefined>;
  let known = state[RESOURCE_INFO];
  if (!known) {
    known = new Map();
    state[RESOURCE_INFO] = known;
  }
  const key = `${client.clientId} ${indicator}`;
  let info = known.get(key);
  if (!info) {
    info = resourceServerInfo(resources, accounts, ctx, indicator, client);
    known.set(key, info);
  }
  return info;
}

/**
 * Checking a certificate's chain verifies signatures, the largest cost of an mTLS token request.
 * A connection presents the same certificate object for its life (client-certificates.ts), so its
 * answer is kept for a minute: long enough for a keep-alive connection's requests, short enough that
 * a CA's certificate running out of validity is noticed (the leaf's own validity is checked at
 * every request anyway).
 */
const CHAIN_ANSWER_MS = 60_000;
const chainAnswers = new WeakMap<object, { ok: boolean; until: number }>();

function chainsToClientCa(presented: PresentedCertificate, clientCas: readonly X509Certificate[]): boolean {
  const known = chainAnswers.get(presented);
  if (known && known.until > Date.now()) return known.ok;
  const ok = chainsTo(presented.certificate, clientCas, presented.chain);
  chainAnswers.set(presented, { ok, until: Date.now() + CHAIN_ANSWER_MS });
  return ok;
}

/**
 * A client may introspect or revoke a token issued to itself, and a resource server's own client
 * may introspect and revoke the tokens issued for that resource server. Nobody else may.
 */
function mayInspect(client: ClientLike, token: { clientId?: string; aud?: string | string[] }): boolean {
  if (token.clientId === client.clientId) return client.clientAuthMethod !== 'none';
  const audience = metadataOf(client).tessera_resource_server;
  const tokenAudiences = Array.isArray(token.aud) ? token.aud : [token.aud];
  return typeof audience === 'string' && tokenAudiences.includes(audience);
}

function validateTesseraMetadata(key: string, value: unknown): void {
  const invalid = (message: string) => {
    throw new errors.InvalidClientMetadata(`${key} ${message}`);
  };
  if (value === undefined) return;
  switch (key) {
    case 'tessera_resources':
      if (!value || typeof value !== 'object' || Array.isArray(value)) invalid('must be an object of audience to scopes');
      for (const scopes of Object.values(value as object)) {
        if (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string')) invalid('must map each audience to an array of scopes');
      }
      break;
    case 'tessera_tls_subjects':
      if (!Array.isArray(value) || !value.every((entry) => entry && typeof entry.value === 'string' && entry.type in TLS_SUBJECT_METADATA)) {
        invalid('must be an array of { type, value } subjects');
      }
      break;
    case 'tessera_resource_server':
      if (typeof value !== 'string') invalid('must be a resource server audience');
      break;
    case 'tessera_roles':
      if (!Array.isArray(value) || !value.every((role) => typeof role === 'string')) invalid('must be an array of role names');
      break;
    case REQUIRE_MFA_METADATA:
      if (typeof value !== 'boolean') invalid('must be true or false');
      break;
    case 'tessera_first_party':
      if (typeof value !== 'boolean') invalid('must be true or false');
      break;
  }
}

/**
 * What registration refuses is refused in config/clients.json too, at startup, one line per problem:
 * a subject DN that does not parse (it would match no certificate, or once did match the wrong ones),
 * and in production a jwks_uri on a loopback or private address.
 */
function staticClientProblems(client: Record<string, unknown>, config: Config): string[] {
  const where = `clients.json: client ${String(client.client_id)}`;
  const subjects: TlsSubject[] = [
    ...(typeof client.tls_client_auth_subject_dn === 'string' ? [{ type: 'subject_dn' as const, value: client.tls_client_auth_subject_dn }] : []),
    ...(Array.isArray(client.tessera_tls_subjects) ? client.tessera_tls_subjects as TlsSubject[] : []),
  ];
  const problems = subjects.map((subject) => (subject && typeof subject.value === 'string' ? tlsSubjectProblem(subject) : undefined));
  const jwksProblem = typeof client.jwks_uri === 'string' ? jwksUriProblem(client.jwks_uri, config.env === 'production') : undefined;
  problems.push(jwksProblem && `jwks_uri: ${jwksProblem}`);
  return problems.filter((problem): problem is string => Boolean(problem)).map((problem) => `${where}: ${problem}`);
}

/**
 * oidc-provider's cookie names are fixed at start, so they take their prefixes only when every
 * browser request will arrive over TLS: an https ISSUER that Tessera terminates itself, or one a TLS
 * proxy fronts (BEHIND_TLS_PROXY). Elsewhere a prefixed cookie would lack Secure and be dropped.
 */
export function cookiesOverTls(config: Config): boolean {
  return config.issuer.startsWith('https:') && (Boolean(config.tls.cert) || config.behindTlsProxy);
}

export const SIGNING_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/**
 * The default login and consent prompts, plus:
 * - `prompt=create` (OpenID Connect "Initiating User Registration") is not built into oidc-provider:
 *   a requestable prompt named `create` opens the interaction on the registration page, and is
 *   satisfied by the registration result. It goes first so it wins over `login`.
 * - a session whose account was disabled or deleted must sign in again (oidc-provider would
 *   otherwise carry on with a session that has no account behind it).
 * - a session signed in with one factor is asked for a second when the client requires it
 *   (`tessera_require_mfa`) or the request accepts only `urn:tessera:loa:2` (interaction/after-first-factor.ts
 *   then goes straight to the second factor, or to enrolment, without asking for the password again).
 */
function interactionPrompts(): interactionPolicy.Prompt[] {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.unshift(new Check('account_unavailable', 'the signed-in account is no longer available', (ctx) =>
    ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT));
  policy.get('login')!.checks.push(new Check(SECOND_FACTOR_REASON, 'a second factor is required', 'login_required', (ctx) =>
    ctx.oidc.session?.accountId && ctx.oidc.acr !== ACR_MULTI_FACTOR
      && multiFactorRequired(ctx.oidc.client && metadataOf(ctx.oidc.client as unknown as ClientLike) as Record<string, unknown>, ctx.oidc.params as Record<string, unknown>)
      ? Check.REQUEST_PROMPT
      : Check.NO_NEED_TO_PROMPT));
  policy.unshift(new Prompt({ name: 'create', requestable: true }));
  return policy;
}

export function buildConfiguration({ config, accounts, resources, keys, adapter, staticClients, mtlsBaseUrl }: ConfigurationDependencies): Configuration {
  const clientCas = config.tls.clientCa ? parseBundle(config.tls.clientCa) : [];
  if (staticClients.some((client) => client.client_id === ACCOUNT_CLIENT_ID)) {
    throw new ConfigError([`clients.json: client_id ${ACCOUNT_CLIENT_ID} is reserved for the account page`]);
  }
  const staticProblems = staticClients.flatMap((client) => staticClientProblems(client, config));
  if (staticProblems.length) throw new ConfigError(staticProblems);
  return {
    adapter,
    clients: [...staticClients, accountClientMetadata(config.issuer)] as unknown as Configuration['clients'],
    jwks: { keys: keys.signingKeys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: {
      names: providerCookieNames(cookiesOverTls(config)),
      keys: keys.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },

    async findAccount(_ctx, sub) {
      const account = await accounts.findBySub(sub);
      if (!account || account.disabled) return undefined;
      const claims = claimsOf(account);
      return { accountId: sub, claims: () => claims };
    },
    claims: {
      ...Object.fromEntries(Object.entries(CLAIMS_BY_SCOPE).map(([scope, claims]) => [scope, [...claims]])),
      // How the person signed in (domain/mfa/assurance.ts) goes in every ID token, asked for or not.
      openid: [...CLAIMS_BY_SCOPE.openid, 'acr', 'amr'],
    },
    acrValues: [...ACR_VALUES],
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles'],
    // RPs (and people comparing with Keycloak/Auth0) expect the scope's claims in the ID token too,
    // not only at userinfo.
    conformIdTokenClaims: false,
    // The account page is Tessera's own: it asks only for `openid` and never for consent.
    async loadExistingGrant(ctx) {
      const { client, session, account, provider } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session?.grantIdFor(client!.clientId);
      if (grantId) return provider.Grant.find(grantId);
      if (client?.clientId !== ACCOUNT_CLIENT_ID || !account) return undefined;
      const grant = new provider.Grant({ clientId: ACCOUNT_CLIENT_ID, accountId: account.accountId });
      grant.addOIDCScope('openid');
      await grant.save();
      return grant;
    },

    responseTypes: ['code'],
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      require_auth_time: true,
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'],
    extraClientMetadata: {
      properties: [...TESSERA_CLIENT_METADATA],
      validator(_ctx, key, value) {
        validateTesseraMetadata(key, value);
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['idTokenSigningAlgValues'],
      userinfoSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['userinfoSigningAlgValues'],
      clientAuthSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['clientAuthSigningAlgValues'],
    },

    rotateRefreshToken: true,
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    // RFC 9068 and RFC 7662 both name the client as the subject of a client credentials token;
    // oidc-provider puts it in JWTs but leaves it out of introspection answers for opaque ones.
    async extraTokenClaims(_ctx, token) {
      return token.kind === 'ClientCredentials' ? { sub: token.clientId } : undefined;
    },
    ttl: {
      // A resource server's own token lifetime wins over the default.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: config.ttl.session,
      Interaction: config.ttl.interaction,
      Grant: config.ttl.grant,
      ...deviceFlowTtl(config),
    },

    discovery: {
      claim_types_supported: ['normal'],
      // Not advertised by oidc-provider itself; `create` is ours (see interactionPrompts).
      prompt_values_supported: ['none', 'login', 'consent', 'create'],
      // RFC 8705 section 5: certificate-using clients go to the mTLS listener; browsers never do.
      ...(mtlsBaseUrl && {
        mtls_endpoint_aliases: {
          token_endpoint: `${mtlsBaseUrl}/token`,
          userinfo_endpoint: `${mtlsBaseUrl}/me`,
          introspection_endpoint: `${mtlsBaseUrl}/token/introspection`,
          revocation_endpoint: `${mtlsBaseUrl}/token/revocation`,
          pushed_authorization_request_endpoint: `${mtlsBaseUrl}/request`,
          ...Object.fromEntries(Object.entries(deviceFlow.mtlsEndpointAliases).map(([name, route]) => [name, `${mtlsBaseUrl}${route}`])),
        },
      }),
    },
    interactions: {
      policy: interactionPrompts(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: {
        enabled: true,
        async allowedPolicy(_ctx, client, token) {
          return mayInspect(client as unknown as ClientLike, token as { clientId?: string; aud?: string | string[] });
        },
      },
      introspection: {
        enabled: true,
        async allowedPolicy(_ctx, client, token) {
          return mayInspect(client as unknown as ClientLike, token as { clientId?: string; aud?: string | string[] });
        },
      },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A machine client allowed exactly one API needs no `resource` parameter.
        defaultResource(ctx, client, oneOf) {
          refusePersonScopes(ctx);
          if (oneOf?.length) return oneOf[0]!;
          const audiences = Object.keys(allowedResources(client as unknown as ClientLike));
          return audiences.length === 1 && client.grantTypeAllowed('client_credentials') ? audiences[0]! : undefined!;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, client) => resourceServerInfoOnce(resources, accounts, ctx, indicator, client as unknown as ClientLike),
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        selfSignedTlsClientAuth: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => presentedCertificate(ctx)?.pem,
        certificateAuthorized(ctx) {
          const presented = presentedCertificate(ctx);
          return Boolean(presented && chainsToClientCa(presented, clientCas));
        },
        // Every subject registered for the client counts, not only the one oidc-provider names:
        // that is what lets a client move to a new certificate without downtime.
        certificateSubjectMatches(ctx, property, expected) {
          const presented = presentedCertificate(ctx);
          if (!presented) return false;
          const registered = (ctx.oidc.client && metadataOf(ctx.oidc.client as unknown as ClientLike).tessera_tls_subjects) as TlsSubject[] | undefined;
          const type = Object.entries(TLS_SUBJECT_METADATA).find(([, name]) => name === property)?.[0] as TlsSubjectType | undefined;
          const subjects = registered?.length ? registered : type ? [{ type, value: expected }] : [];
          return subjects.some((subject) => subjectMatches(presented.certificate, subject));
        },
      },
      dPoP: { enabled: true },
      deviceFlow: deviceFlowFeature(config),
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx: KoaContextWithOIDC, form: string) {
          await renderPage(ctx, 'logout', {
            title: 'Sign out',
            form,
            clientName: ctx.oidc.client?.clientName,
          });
        },
        async postLogoutSuccessSource(ctx: KoaContextWithOIDC) {
          await renderPage(ctx, 'logged-out', {
            title: 'Signed out',
            clientName: ctx.oidc.client?.clientName,
          });
        },
      },
    },
    async renderError(ctx, out, error) {
      const status = (error as { statusCode?: number; status?: number }).statusCode ?? ctx.status;
      ctx.status = status >= 400 && status < 600 ? status : 400;
      await renderPage(ctx, 'error', {
        title: 'Something went wrong',
        error: out.error,
        description: out.error_description,
      });
    },
  };
}
