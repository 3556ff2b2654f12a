/**
 * Signing in to the account page: an authorization code flow with PKCE against Tessera itself, as
 * the built-in client `tessera-account`. openid-client builds the request and checks the answer
 * (state, `iss`, the ID token's signature, audience and nonce); discovery, JWKS and the code exchange
 * reach oidc-provider in this process (in-process-fetch.ts), never over the network.
 *
 * Two signed cookies, both httpOnly and SameSite=Lax, named `__Host-` over TLS (cookie-names.ts),
 * which is why their path is / although only /account reads them:
 * - `tessera.account.signin` holds the PKCE verifier, state and nonce while the person signs in;
 * - `tessera.account` holds who is signed in and the `sid` of their Tessera session. It lives
 *   15 minutes from the last request, and every request checks that the session with that `sid`
 *   still exists, so signing out of Tessera (or having the session ended elsewhere) ends it too.
 */
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import * as oidc from 'openid-client';

import { AppError } from '../errors.ts';
import { ACCOUNT_SESSION_COOKIE, ACCOUNT_SIGN_IN_COOKIE } from '../http/cookie-names.ts';
import { ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID } from '../oidc/account-client.ts';
import { clearSigned, InProcessClient, readSignedJson, writeSignedJson } from './first-party-sign-in.ts';

const SESSION_COOKIE = ACCOUNT_SESSION_COOKIE;
const SIGN_IN_COOKIE = ACCOUNT_SIGN_IN_COOKIE;
/** Idle lifetime of the account-page session; the Tessera session behind it usually lives far longer. */
export const ACCOUNT_IDLE_SECONDS = 15 * 60;
/** How long a sign-in may take, from leaving the account page to coming back. */
const SIGN_IN_SECONDS = 15 * 60;
/** Changing second factors needs a sign-in at most this old (a "sudo mode", as GitHub and Keycloak do). */
export const RECENT_SIGN_IN_SECONDS = 10 * 60;

export interface AccountSession {
  sub: string;
  sid: string;
  /** When the person last proved who they are (the ID token's auth_time), epoch seconds. */
  authTime: number;
  /** How they proved it (the ID token's amr, RFC 8176): "mfa" when a second factor or passkey was used. */
  amr: string[];
}

interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  returnTo: string;
  exp: number;
}

/** Only account-page paths are returned to: a sign-in can never be bounced elsewhere. */
export function safeReturnPath(value: unknown): string {
  return typeof value === 'string' && /^\/account(?:[/?#][^\s\\]*)?$/.test(value) && !value.startsWith('//') ? value : '/account';
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}





export class AccountSignIn {
  readonly #issuer: string;
  readonly #client: InProcessClient;

  constructor(issuer: string, provider: () => Provider) {
    this.#issuer = issuer;
    this.#client = new InProcessClient(issuer, ACCOUNT_CLIENT_ID, provider);
  }


  /** Starts a sign-in: remembers the PKCE verifier, state and nonce, and answers the authorization URL. */
  async start(ctx: Context, returnTo: string, options: { reauthenticate?: boolean } = {}): Promise<string> {
    const configuration = await this.#client.configuration();
    const pending: PendingSignIn = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      returnTo: safeReturnPath(returnTo),
      exp: now() + SIGN_IN_SECONDS,
    };
    writeSignedJson(ctx, SIGN_IN_COOKIE, pending, SIGN_IN_SECONDS);
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: `${this.#issuer}${ACCOUNT_CALLBACK_PATH}`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      // oidc-provider puts `sid` in an ID token only when asked; the account session is bound to it.
      claims: JSON.stringify({ id_token: { sid: { essential: true } } }),
      ...(options.reauthenticate && { prompt: 'login', max_age: '0' }),
    });
    // Relative: the browser stays on the origin it used, whatever host name the issuer has.
    return url.pathname + url.search;
  }

  /**
   * Finishes a sign-in at the callback: exchanges the code (PKCE) and checks the ID token.
   * Throws ERR_INVALID_INPUT for anything a person can cause (an old tab, a cancelled sign-in).
   */
  async finish(ctx: Context): Promise<{ session: AccountSession; returnTo: string }> {
    const pending = readSignedJson<PendingSignIn>(ctx, SIGN_IN_COOKIE);
    clearSigned(ctx, SIGN_IN_COOKIE);
    if (!pending || typeof pending.state !== 'string' || pending.exp < now()) {
      throw new AppError('ERR_INVALID_INPUT', 'This sign-in took too long or was started in another tab. Sign in again.');
    }
    const configuration = await this.#client.configuration();
    const callback = new URL(`${this.#issuer}${ACCOUNT_CALLBACK_PATH}${ctx.search}`);
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
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
    if (!claims || typeof claims.sid !== 'string' || typeof claims.auth_time !== 'number') {
      throw new AppError('ERR_INVALID_INPUT', 'Sign-in did not complete. Sign in again.');
    }
    const amr = Array.isArray(claims.amr) ? claims.amr.filter((value): value is string => typeof value === 'string') : [];
    const session: AccountSession = { sub: claims.sub, sid: claims.sid, authTime: claims.auth_time, amr };
    this.remember(ctx, session);
    return { session, returnTo: safeReturnPath(pending.returnTo) };
  }

  /** Sets (or slides) the account-page session cookie. */
  remember(ctx: Context, session: AccountSession): void {
    writeSignedJson(ctx, SESSION_COOKIE, { ...session, exp: now() + ACCOUNT_IDLE_SECONDS }, ACCOUNT_IDLE_SECONDS);
  }

  /** The account-page session this request carries, if its cookie is intact and not idle for too long. */
  current(ctx: Context): AccountSession | undefined {
    const value = readSignedJson<AccountSession & { exp: number }>(ctx, SESSION_COOKIE);
    if (!value || typeof value.sub !== 'string' || typeof value.sid !== 'string' || typeof value.authTime !== 'number' || !(value.exp > now())) {
      return undefined;
    }
    // A cookie from before amr was kept proves no second factor.
    const amr = Array.isArray(value.amr) ? value.amr.filter((entry) => typeof entry === 'string') : [];
    return { sub: value.sub, sid: value.sid, authTime: value.authTime, amr };
  }

  forget(ctx: Context): void {
    clearSigned(ctx, SESSION_COOKIE);
  }
}

export function signedInRecently(session: AccountSession): boolean {
  return now() - session.authTime <= RECENT_SIGN_IN_SECONDS;
}

/**
 * Second factors and passkeys change only after a recent sign-in with the strongest factor the
 * account has: once it has a second factor or passkey, a password alone (say, a stolen one) is not
 * enough to add another or take one away.
 */
export function mayChangeFactors(session: AccountSession, hasSecondFactor: boolean): boolean {
  return signedInRecently(session) && (!hasSecondFactor || session.amr.includes('mfa'));
}
