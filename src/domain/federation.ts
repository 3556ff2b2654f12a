/**
 * The round trip to an upstream provider, with openid-client: authorization code with PKCE (S256),
 * `state` and `nonce`; the ID token validated (issuer, audience, signature from the upstream's
 * JWKS, nonce, and Microsoft's `{tenantid}` issuer against the token's `tid`); RFC 9207's `iss`
 * checked whenever the upstream sends it. GitHub has no ID tokens: its profile and verified
 * addresses come from its API with the access token, which is then dropped. Upstream access and
 * refresh tokens are never stored.
 *
 * Every failure becomes ERR_UPSTREAM_FAILED with a `reason` and a message a person can act on.
 */
import * as oidc from 'openid-client';

import type { UpstreamProfile } from './identities.ts';
import { upstreamFailed } from './identities.ts';
import type { UpstreamWithSecret } from './upstreams.ts';

/** What the start of a round trip leaves behind, server-side, for its callback. */
export interface FlowSecrets {
  state: string;
  nonce: string;
  codeVerifier: string;
}

export interface FederationOptions {
  /** Seconds one request to an upstream may take (discovery, token, JWKS, API). */
  timeoutSeconds: number;
  /** Outside production, http on loopback is allowed (validated when the upstream was added). */
  production: boolean;
  /** How long a discovery document is reused, in milliseconds. */
  discoveryTtlMs?: number;
}

const DEFAULT_DISCOVERY_TTL_MS = 10 * 60_000;

export class Federation {
  readonly #options: FederationOptions;
  readonly #configurations = new Map<string, { key: string; at: number; configuration: oidc.Configuration }>();

  constructor(options: FederationOptions) {
    this.#options = options;
  }

  /** The URL to send the person to, and the secrets its callback needs. */
  async begin(upstream: UpstreamWithSecret, redirectUri: string): Promise<{ url: URL; secrets: FlowSecrets }> {
    const configuration = await this.#configuration(upstream);
    const secrets: FlowSecrets = { state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: upstream.scopes.join(' '),
      state: secrets.state,
      code_challenge: await oidc.calculatePKCECodeChallenge(secrets.codeVerifier),
      code_challenge_method: 'S256',
      ...(upstream.kind === 'oidc' && { nonce: secrets.nonce }),
    });
    return { url, secrets };
  }

  /** Validates the callback (`query` as received at `redirectUri`) and returns who the upstream says the person is. */
  async complete(upstream: UpstreamWithSecret, redirectUri: string, query: string, secrets: FlowSecrets): Promise<UpstreamProfile> {
    const configuration = await this.#configuration(upstream);
    const callback = new URL(redirectUri);
    callback.search = query;
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: secrets.codeVerifier,
        expectedState: secrets.state,
        ...(upstream.kind === 'oidc' && { expectedNonce: secrets.nonce, idTokenExpected: true }),
      });
    } catch (error) {
      throw failure(upstream, error);
    }
    if (upstream.kind === 'github') return this.#githubProfile(upstream, configuration, tokens.access_token);
    const idToken = tokens.claims();
    if (!idToken || typeof idToken.sub !== 'string' || !idToken.sub) throw upstreamFailed(`${upstream.name} did not send a valid ID token. Try again, or use another way to sign in.`, 'invalid_id_token');
    let claims: Record<string, unknown> = idToken;
    // Many providers put only `sub` in the ID token of a code flow and the rest at userinfo (OIDC Core 5.4).
    if (typeof idToken.email !== 'string' && configuration.serverMetadata().userinfo_endpoint) {
      try {
        claims = { ...await oidc.fetchUserInfo(configuration, tokens.access_token, idToken.sub), ...idToken };
      } catch (error) {
        throw failure(upstream, error);
      }
    }
    return {
      subject: idToken.sub,
      email: typeof claims.email === 'string' ? claims.email : undefined,
      emailVerified: claims.email_verified === true,
      name: typeof claims.name === 'string' ? claims.name : undefined,
      givenName: typeof claims.given_name === 'string' ? claims.given_name : undefined,
      familyName: typeof claims.family_name === 'string' ? claims.family_name : undefined,
    };
  }

  /** GitHub: the numeric user id is the subject (logins can be renamed); the address is a verified one from /user/emails. */
  async #githubProfile(upstream: UpstreamWithSecret, configuration: oidc.Configuration, accessToken: string): Promise<UpstreamProfile> {
    const api = async (url: string): Promise<unknown> => {
      try {
        const response = await oidc.fetchProtectedResource(configuration, accessToken, new URL(url), 'GET', undefined, new Headers({ accept: 'application/vnd.github+json' }));
        if (!response.ok) throw upstreamFailed(`${upstream.name} refused to share your profile. Try again, or use another way to sign in.`, 'profile_refused');
        return await response.json();
      } catch (error) {
        throw failure(upstream, error);
      }
    };
    const user = await api(upstream.userEndpoint!) as { id?: unknown; name?: unknown };
    if ((typeof user.id !== 'number' && typeof user.id !== 'string') || String(user.id) === '') {
      throw upstreamFailed(`${upstream.name} did not say who you are. Try again, or use another way to sign in.`, 'profile_refused');
    }
    const emails = await api(upstream.emailsEndpoint!);
    const list = Array.isArray(emails) ? emails as Array<{ email?: unknown; primary?: unknown; verified?: unknown }> : [];
    const verified = list.filter((entry) => typeof entry.email === 'string' && entry.verified === true);
    const chosen = verified.find((entry) => entry.primary === true) ?? verified[0];
    return {
      subject: String(user.id),
      email: chosen ? String(chosen.email) : undefined,
      emailVerified: chosen !== undefined,
      name: typeof user.name === 'string' ? user.name : undefined,
    };
  }

  async #configuration(upstream: UpstreamWithSecret): Promise<oidc.Configuration> {
    const key = JSON.stringify([upstream.issuer, upstream.authorizationEndpoint, upstream.tokenEndpoint, upstream.clientId, upstream.clientSecret]);
    const cached = this.#configurations.get(upstream.id);
    const ttl = this.#options.discoveryTtlMs ?? DEFAULT_DISCOVERY_TTL_MS;
    if (cached && cached.key === key && Date.now() - cached.at < ttl) return cached.configuration;
    const insecure = !this.#options.production;
    let configuration: oidc.Configuration;
    try {
      if (upstream.kind === 'oidc') {
        configuration = await oidc.discovery(new URL(upstream.issuer!), upstream.clientId, upstream.clientSecret, undefined, {
          timeout: this.#options.timeoutSeconds,
          // openid-client trusts TLS for ID tokens from the token endpoint unless told otherwise; the
          // signature is checked against the upstream's JWKS here all the same, whatever the transport.
          execute: [oidc.enableNonRepudiationChecks, ...(insecure && upstream.issuer!.startsWith('http:') ? [oidc.allowInsecureRequests] : [])],
        });
      } else {
        configuration = new oidc.Configuration({
          // GitHub names no issuer; its origin stands in, and RFC 9207's `iss` is checked against it if ever sent.
          issuer: new URL(upstream.authorizationEndpoint!).origin,
          authorization_endpoint: upstream.authorizationEndpoint!,
          token_endpoint: upstream.tokenEndpoint!,
        }, upstream.clientId, upstream.clientSecret);
        if (insecure && upstream.authorizationEndpoint!.startsWith('http:')) oidc.allowInsecureRequests(configuration);
      }
    } catch (error) {
      throw failure(upstream, error);
    }
    configuration.timeout = this.#options.timeoutSeconds;
    this.#configurations.set(upstream.id, { key, at: Date.now(), configuration });
    return configuration;
  }
}

/** What went wrong, for the person (the message) and for operators (the reason, in the audit trail). */
function failure(upstream: UpstreamWithSecret, error: unknown): Error {
  if ((error as { code?: unknown }).code === 'ERR_UPSTREAM_FAILED') return error as Error;
  const tryAgain = 'Try again, or use another way to sign in.';
  const code = String((error as { code?: unknown }).code ?? '');
  const name = String((error as { name?: unknown }).name ?? '');
  const cause = (error as { cause?: { name?: unknown; code?: unknown; message?: unknown } }).cause;
  // openid-client wraps oauth4webapi's errors: what went wrong is often only in the cause's message.
  const message = `${String((error as Error).message)} ${String(cause?.message ?? '')}`;
  if (error instanceof oidc.AuthorizationResponseError) {
    return error.error === 'access_denied'
      ? upstreamFailed(`You did not allow the sign-in at ${upstream.name}. ${tryAgain}`, 'access_denied', { cause: error })
      : upstreamFailed(`${upstream.name} refused the sign-in (${error.error}). ${tryAgain}`, 'upstream_error', { cause: error });
  }
  if (error instanceof oidc.ResponseBodyError) return upstreamFailed(`${upstream.name} refused the sign-in (${error.error}). ${tryAgain}`, 'upstream_error', { cause: error });
  if (code === 'OAUTH_TIMEOUT' || name === 'TimeoutError' || cause?.name === 'TimeoutError' || code === 'OAUTH_ABORT') {
    return upstreamFailed(`${upstream.name} did not answer in time. ${tryAgain}`, 'timeout', { cause: error });
  }
  if (name === 'TypeError' || cause?.code === 'ECONNREFUSED' || /fetch failed/i.test(message)) {
    return upstreamFailed(`${upstream.name} cannot be reached right now. ${tryAgain}`, 'unreachable', { cause: error });
  }
  if (/"state"|state mismatch|unexpected "state"/i.test(message)) {
    return upstreamFailed(`This sign-in answer does not belong to a sign-in started here. ${tryAgain}`, 'invalid_state', { cause: error });
  }
  // RFC 9207: the answer names another issuer than this upstream's (or leaves it out where the upstream promised it).
  if (/response parameter "iss"|"iss" \(issuer\) response parameter/i.test(message)) {
    return upstreamFailed(`This answer did not come from ${upstream.name}. ${tryAgain}`, 'issuer_mismatch', { cause: error });
  }
  if (/JWT|JWS|id_token|ID Token|nonce|"iss"|"aud"|signature/i.test(message)) {
    return upstreamFailed(`${upstream.name} sent an ID token that failed validation. ${tryAgain}`, 'invalid_id_token', { cause: error });
  }
  return upstreamFailed(`${upstream.name} answered in a way Tessera cannot use. ${tryAgain}`, 'invalid_response', { cause: error });
}
