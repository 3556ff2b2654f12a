/**
 * Signing in to the admin console: an authorization code flow with PKCE against Tessera itself, as
 * the built-in client `tessera-console` (oidc/console-client.ts), asking for an admin API access
 * token (resource indicator = the admin API's audience, scope `admin`) with a second factor
 * (`acr_values=urn:tessera:loa:2`, and the client's `tessera_require_mfa`). openid-client builds the
 * request and checks the answer; discovery, JWKS and the code exchange stay in this process
 * (account/in-process-fetch.ts).
 *
 * Two signed cookies, httpOnly and SameSite=Lax (`__Host-` over TLS): one for the pending sign-in
 * (verifier, state, nonce), one for the console session, which holds the admin API access token
 * itself. The token is the operator's own and short-lived (ADMIN_TOKEN_TTL_SECONDS); the console
 * gets a fresh one through the same flow, without a page in between while the Tessera session lives.
 */
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import * as oidc from 'openid-client';

import { clearSigned, InProcessClient, readSignedJson, writeSignedJson } from '../account/first-party-sign-in.ts';
import { ADMIN_SCOPE, adminAudience } from '../admin/resource.ts';
import { ACR_MULTI_FACTOR } from '../domain/mfa/assurance.ts';
import { AppError } from '../errors.ts';
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID, CONSOLE_PATH } from '../oidc/console-client.ts';

export const CONSOLE_SESSION_COOKIE = 'tessera.console';
const SIGN_IN_COOKIE = 'tessera.console.signin';
const SIGN_IN_SECONDS = 15 * 60;
/** Idle lifetime of a console session; its access token runs out sooner and is renewed silently. */
export const CONSOLE_IDLE_SECONDS = 30 * 60;
/** A GET renews a token with less than this left, so a form filled in afterwards still has time to post. */
const RENEW_BEFORE_SECONDS = 120;

export interface ConsoleSession {
  sub: string;
  sid: string;
  accessToken: string;
  /** When the access token expires, epoch seconds. */
  tokenExp: number;
}

interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  returnTo: string;
  exp: number;
}

/** Only console pages are returned to, never /admin/api nor elsewhere. */
export function safeConsolePath(value: unknown): string {
  return typeof value === 'string' && /^\/admin(?:\/(?!api(?:[/?#]|$))[^\s\\]*)?(?:\?[^\s\\]*)?$/.test(value) && !value.startsWith('//') ? value : CONSOLE_PATH;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}




export class ConsoleSignIn {
  readonly #issuer: string;
  readonly #client: InProcessClient;

  constructor(issuer: string, provider: () => Provider) {
    this.#issuer = issuer;
    this.#client = new InProcessClient(issuer, CONSOLE_CLIENT_ID, provider);
  }


  async start(ctx: Context, returnTo: string): Promise<string> {
    const configuration = await this.#client.configuration();
    const pending: PendingSignIn = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      returnTo: safeConsolePath(returnTo),
      exp: now() + SIGN_IN_SECONDS,
    };
    writeSignedJson(ctx, SIGN_IN_COOKIE, pending, SIGN_IN_SECONDS);
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: `${this.#issuer}${CONSOLE_CALLBACK_PATH}`,
      scope: `openid ${ADMIN_SCOPE}`,
      resource: adminAudience(this.#issuer),
      acr_values: ACR_MULTI_FACTOR,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      claims: JSON.stringify({ id_token: { sid: { essential: true } } }),
    });
    return url.pathname + url.search;
  }

  /**
   * Finishes at the callback. Throws ERR_INVALID_INPUT for what a person can cause (an old tab, a
   * cancelled sign-in), ERR_INSUFFICIENT_SCOPE (403) when the token carries no `admin` scope (no admin role) or
   * the sign-in proved no second factor.
   */
  async finish(ctx: Context): Promise<{ session: ConsoleSession; returnTo: string }> {
    const pending = readSignedJson<PendingSignIn>(ctx, SIGN_IN_COOKIE);
    clearSigned(ctx, SIGN_IN_COOKIE);
    if (!pending || typeof pending.state !== 'string' || pending.exp < now()) {
      throw new AppError('ERR_INVALID_INPUT', 'This sign-in took too long or was started in another tab. Sign in again.');
    }
    const configuration = await this.#client.configuration();
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(configuration, new URL(`${this.#issuer}${CONSOLE_CALLBACK_PATH}${ctx.search}`), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      }, { resource: adminAudience(this.#issuer) });
    } catch (error) {
      if (error instanceof oidc.AuthorizationResponseError) {
        throw new AppError('ERR_INVALID_INPUT', error.error === 'access_denied' ? 'Sign-in was cancelled.' : 'Sign-in did not complete. Sign in again.', { cause: error });
      }
      if (error instanceof oidc.ResponseBodyError || (error as { code?: string }).code?.startsWith('OAUTH_')) {
        throw new AppError('ERR_INVALID_INPUT', 'This sign-in link is no longer valid. Sign in again.', { cause: error });
      }
      throw error;
    }
    const claims = tokens.claims();
    if (!claims || typeof claims.sid !== 'string') throw new AppError('ERR_INVALID_INPUT', 'Sign-in did not complete. Sign in again.');
    const amr = Array.isArray(claims.amr) ? claims.amr : [];
    // The client requires a second factor, so this holds unless something upstream is broken: checked anyway.
    if (!amr.includes('mfa')) throw new AppError('ERR_INSUFFICIENT_SCOPE', 'The admin console needs a sign-in with a second factor.');
    // The admin scope is limited to the admin role: a person without it gets a token without it.
    if (!(tokens.scope ?? '').split(' ').includes(ADMIN_SCOPE)) {
      throw new AppError('ERR_INSUFFICIENT_SCOPE', 'Your account does not hold the admin role, so it cannot use the admin console.');
    }
    const session: ConsoleSession = { sub: claims.sub, sid: claims.sid, accessToken: tokens.access_token, tokenExp: now() + (tokens.expires_in ?? 0) };
    this.remember(ctx, session);
    return { session, returnTo: safeConsolePath(pending.returnTo) };
  }

  remember(ctx: Context, session: ConsoleSession): void {
    writeSignedJson(ctx, CONSOLE_SESSION_COOKIE, { ...session, exp: now() + CONSOLE_IDLE_SECONDS }, CONSOLE_IDLE_SECONDS);
  }

  /** The session this request carries, if intact, not idle too long, and its token still usable for `forMethod`. */
  current(ctx: Context): ConsoleSession | undefined {
    const value = readSignedJson<ConsoleSession & { exp: number }>(ctx, CONSOLE_SESSION_COOKIE);
    if (!value || typeof value.sub !== 'string' || typeof value.sid !== 'string' || typeof value.accessToken !== 'string' || typeof value.tokenExp !== 'number' || !(value.exp > now())) {
      return undefined;
    }
    const margin = ctx.method === 'GET' ? RENEW_BEFORE_SECONDS : 5;
    if (value.tokenExp - margin <= now()) return undefined;
    return { sub: value.sub, sid: value.sid, accessToken: value.accessToken, tokenExp: value.tokenExp };
  }

  forget(ctx: Context): void {
    clearSigned(ctx, CONSOLE_SESSION_COOKIE);
  }
}
