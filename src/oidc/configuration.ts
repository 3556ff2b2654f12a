/**
 * How Tessera speaks OAuth and OpenID Connect: the base configuration (clients, cookies, claims,
 * grants, TTLs, client metadata, the error page) merged with each protocol feature's fragment
 * (features/index.ts lists them; flows and prompts are the authorization slice's).
 * Everything follows RFC 9700 and OIDC Core:
 * code flow only, PKCE S256 for every client, exact redirect URI matching, single-use codes,
 * rotating refresh tokens with reuse detection, `iss` in authorization responses.
 */
import type { Configuration } from 'oidc-provider';
import { errors } from 'oidc-provider';

import { ConfigError, type Config } from '../config.ts';
import { CLAIMS_BY_SCOPE, claimsOf, type AccountService } from '../domain/accounts.ts';
import { tlsSubjectProblem, type TlsSubject, TLS_SUBJECT_METADATA } from '../domain/certificates.ts';
import { backchannelLogoutUriProblem, jwksUriProblem, TESSERA_CLIENT_METADATA } from '../domain/clients.ts';
import type { KeyMaterial } from '../domain/keys.ts';
import { ACR_VALUES, REQUIRE_MFA_METADATA } from '../domain/mfa/assurance.ts';
import type { ResourceService } from '../domain/resources.ts';
import { UPSTREAM_HINT_PARAMETERS } from '../domain/upstreams.ts';
import { providerCookieNames } from '../http/cookie-names.ts';
import { appLink, errorSituation, type KnownClient } from '../http/error-page.ts';
import type { OidcStore } from '../store/port.ts';
import { ACCOUNT_CLIENT_ID, accountClientMetadata } from './account-client.ts';
import { findAccountGrant } from './account-grant.ts';
import { CONSOLE_CLIENT_ID, consoleClientMetadata } from './console-client.ts';
import type { AdapterConstructor } from './adapter.ts';
import type { RenderPage } from './features/feature.ts';
import { isMetadataDocumentId } from './features/client-id-metadata-document.ts';
import { mtlsEndpointAliases, SLICES } from './features/index.ts';
import { checkSelfRegistered, registering } from './features/registration.ts';

export interface ConfigurationDependencies {
  config: Config;
  accounts: AccountService;
  resources: ResourceService;
  keys: KeyMaterial;
  adapter: AdapterConstructor;
  /** Grants are looked up by account here (account-grant.ts). */
  oidc: OidcStore;
  staticClients: Record<string, unknown>[];
  /** Public base URL of the mTLS listener, when there is one. */
  mtlsBaseUrl: string | undefined;
  /** Renders Tessera's pages (http/render.ts), for oidc-provider's error and logout pages. */
  render: RenderPage;
  /** Counts one use of a limited initial access token (features/registration.ts); false when spent. */
  countTokenUse?: ((tokenKey: string, uses: number, seconds: number) => Promise<boolean>) | undefined;
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
 * and in production a jwks_uri or backchannel_logout_uri on a loopback or private address.
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
  const logoutProblem = typeof client.backchannel_logout_uri === 'string' ? backchannelLogoutUriProblem(client.backchannel_logout_uri, config.env === 'production') : undefined;
  problems.push(logoutProblem && `backchannel_logout_uri: ${logoutProblem}`);
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

/** Top-level settings whose objects several slices add to; any other setting belongs to one slice. */
const MERGED_SETTINGS = new Set(['features', 'discovery', 'ttl']);

/**
 * The base configuration with every slice's fragment merged in. Two slices setting the same thing
 * is a mistake in the slices, so it stops startup rather than letting the later one win silently.
 */
export function mergeFragments(base: Configuration, fragments: readonly { name: string; fragment: Partial<Configuration> }[]): Configuration {
  const merged: Record<string, unknown> = { ...base };
  const owners = new Map<string, string>();
  function own(setting: string, alreadySet: boolean, name: string): void {
    if (alreadySet) throw new Error(`protocol features: ${name} sets ${setting}, which ${owners.get(setting) ?? 'the base configuration'} sets already`);
    owners.set(setting, name);
  }
  for (const { name, fragment } of fragments) {
    for (const [key, value] of Object.entries(fragment)) {
      if (!MERGED_SETTINGS.has(key)) {
        own(key, key in merged, name);
        merged[key] = value;
        continue;
      }
      const into = { ...(merged[key] as Record<string, unknown> | undefined) };
      for (const [inner, innerValue] of Object.entries(value as Record<string, unknown>)) {
        own(`${key}.${inner}`, inner in into, name);
        into[inner] = innerValue;
      }
      merged[key] = into;
    }
  }
  return merged as Configuration;
}

export function buildConfiguration({ config, accounts, resources, keys, adapter, oidc, staticClients, mtlsBaseUrl, render, countTokenUse }: ConfigurationDependencies): Configuration {
  if (staticClients.some((client) => client.client_id === ACCOUNT_CLIENT_ID)) {
    throw new ConfigError([`clients.json: client_id ${ACCOUNT_CLIENT_ID} is reserved for the account page`]);
  }
  if (staticClients.some((client) => client.client_id === CONSOLE_CLIENT_ID)) {
    throw new ConfigError([`clients.json: client_id ${CONSOLE_CLIENT_ID} is reserved for the admin console`]);
  }
  const staticProblems = staticClients.flatMap((client) => staticClientProblems(client, config));
  if (staticProblems.length) throw new ConfigError(staticProblems);
  const base: Configuration = {
    adapter,
    // The admin console exists with the admin API it calls (ADMIN_API=false removes both).
    clients: [
      ...staticClients,
      accountClientMetadata(config.issuer),
      ...(config.security.adminApi ? [consoleClientMetadata(config.issuer)] : []),
    ] as unknown as Configuration['clients'],
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
    // Kept on the interaction, so the sign-in page can go straight to the named upstream provider.
    extraParams: [...UPSTREAM_HINT_PARAMETERS],
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles'],
    // RPs (and people comparing with Keycloak/Auth0) expect the scope's claims in the ID token too,
    // not only at userinfo.
    conformIdTokenClaims: false,
    // Consent is remembered per account and client, whichever browser session asks (account-grant.ts).
    // The account page is Tessera's own: it asks only for `openid` and never for consent.
    async loadExistingGrant(ctx) {
      const { client, session, account, provider } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session?.grantIdFor(client!.clientId);
      const sessionGrant = grantId ? await provider.Grant.find(grantId) : undefined;
      if (sessionGrant && sessionGrant.accountId === account?.accountId) return sessionGrant;
      if (!client || !account) return undefined;
      const accountGrant = await findAccountGrant(provider, oidc, account.accountId, client.clientId);
      if (accountGrant) return accountGrant;
      if (client.clientId !== ACCOUNT_CLIENT_ID) return undefined;
      const grant = new provider.Grant({ clientId: ACCOUNT_CLIENT_ID, accountId: account.accountId });
      grant.addOIDCScope('openid');
      await grant.save();
      return grant;
    },

    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      require_auth_time: true,
    },
    extraClientMetadata: {
      properties: [...TESSERA_CLIENT_METADATA],
      validator(ctx, key, value, metadata) {
        validateTesseraMetadata(key, value);
        if (key !== 'tessera_registered') return;
        // A client that came by itself (features/registration.ts): registering now, known by its
        // metadata document, or registered before (read back from the store). The operator's own
        // clients are none of these.
        const kind = registering(ctx) ? 'dynamic'
          : config.selfRegistration.metadataDocuments && isMetadataDocumentId(metadata.client_id) && !staticClients.some((client) => client.client_id === metadata.client_id) ? 'metadata_document'
            : value === 'dynamic' ? 'dynamic' : undefined;
        checkSelfRegistered(metadata as Record<string, unknown>, kind, config.selfRegistration, registering(ctx) ? ctx!.oidc.body as Record<string, unknown> | undefined : undefined);
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['idTokenSigningAlgValues'],
      userinfoSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['userinfoSigningAlgValues'],
      clientAuthSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['clientAuthSigningAlgValues'],
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
    },

    discovery: {
      claim_types_supported: ['normal'],
    },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
    },
    async renderError(ctx, out, error) {
      const status = (error as { statusCode?: number; status?: number }).statusCode ?? ctx.status;
      ctx.status = status >= 400 && status < 600 ? status : 400;
      await render(ctx, 'error', {
        error: out.error,
        description: out.error_description,
        situation: errorSituation(out.error),
        // Known only once the client is (a bad redirect URI, not an unknown client): its registered addresses.
        app: appLink((ctx as { oidc?: { client?: KnownClient } }).oidc?.client),
      });
    },
  };
  const deps = { config, accounts, resources, render, countTokenUse, mtlsEndpointAliases: mtlsBaseUrl ? mtlsEndpointAliases(mtlsBaseUrl) : undefined };
  return mergeFragments(base, SLICES.map((slice) => ({ name: slice.name, fragment: slice.configure?.(deps) ?? {} })));
}
