/**
 * The one place that says how Tessera speaks OAuth and OpenID Connect: which flows, features, TTLs,
 * claims and client authentication methods. Everything here follows RFC 9700 and OIDC Core:
 * code flow only, PKCE S256 for every client, exact redirect URI matching, single-use codes,
 * rotating refresh tokens with reuse detection, `iss` in authorization responses.
 */
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { interactionPolicy } from 'oidc-provider';

import type { Config } from '../config.ts';
import { CLAIMS_BY_SCOPE, claimsOf, type AccountService } from '../domain/accounts.ts';
import type { KeyMaterial } from '../domain/keys.ts';
import { renderPage } from '../http/render.ts';
import type { AdapterConstructor } from './adapter.ts';

export interface ConfigurationDependencies {
  config: Config;
  accounts: AccountService;
  keys: KeyMaterial;
  adapter: AdapterConstructor;
  staticClients: Record<string, unknown>[];
}

export const SIGNING_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/**
 * The default login and consent prompts, plus:
 * - `prompt=create` (OpenID Connect "Initiating User Registration") is not built into oidc-provider:
 *   a requestable prompt named `create` opens the interaction on the registration page, and is
 *   satisfied by the registration result. It goes first so it wins over `login`.
 * - a session whose account was disabled or deleted must sign in again (oidc-provider would
 *   otherwise carry on with a session that has no account behind it).
 */
function interactionPrompts(): interactionPolicy.Prompt[] {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.unshift(new Check('account_unavailable', 'the signed-in account is no longer available', (ctx) =>
    ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT));
  policy.unshift(new Prompt({ name: 'create', requestable: true }));
  return policy;
}

export function buildConfiguration({ config, accounts, keys, adapter, staticClients }: ConfigurationDependencies): Configuration {
  return {
    adapter,
    clients: staticClients as unknown as Configuration['clients'],
    jwks: { keys: keys.signingKeys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: {
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
    claims: Object.fromEntries(Object.entries(CLAIMS_BY_SCOPE).map(([scope, claims]) => [scope, [...claims]])),
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    // RPs (and people comparing with Keycloak/Auth0) expect the scope's claims in the ID token too,
    // not only at userinfo.
    conformIdTokenClaims: false,

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
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    enabledJWA: {
      idTokenSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['idTokenSigningAlgValues'],
      userinfoSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['userinfoSigningAlgValues'],
      clientAuthSigningAlgValues: SIGNING_ALGORITHMS as NonNullable<Configuration['enabledJWA']>['clientAuthSigningAlgValues'],
    },

    rotateRefreshToken: true,
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    ttl: {
      AccessToken: config.ttl.accessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: config.ttl.session,
      Interaction: config.ttl.interaction,
      Grant: config.ttl.grant,
    },

    discovery: {
      claim_types_supported: ['normal'],
      // Not advertised by oidc-provider itself; `create` is ours (see interactionPrompts).
      prompt_values_supported: ['none', 'login', 'consent', 'create'],
    },
    interactions: {
      policy: interactionPrompts(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
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
