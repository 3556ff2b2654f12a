/**
 * "Sign in with Tessera": a small relying party built on openid-client, the way a real app would
 * integrate. Authorization code flow with PKCE (S256), `state` and `nonce`; the ID token is
 * validated by openid-client; userinfo is fetched with the access token; sign-out is RP-initiated
 * logout back to this app with its own `state`.
 *
 * Sessions live in server memory, keyed by a random id in a signed, httpOnly, SameSite=Lax cookie,
 * so nothing secret (code verifier, tokens) ever sits in the browser.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import * as oidc from 'openid-client';

export interface DemoRpOptions {
  /** Tessera's issuer identifier, e.g. http://localhost:3000 */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** 0 picks a free port; then register `${url}/callback` with the real port (see `url` in the result). */
  port: number;
  host?: string;
}

export interface RunningDemoRp {
  /** http://localhost:PORT, with the port actually listened on. */
  readonly url: string;
  close(): Promise<void>;
}

export const DEMO_SCOPE = 'openid profile email offline_access';

const SESSION_COOKIE = 'tessera_demo_rp';
/** A sign-in that has not come back within this time is forgotten. */
const PENDING_TTL_MS = 10 * 60_000;
const SESSION_TTL_MS = 8 * 3_600_000;
/** Bounds memory: this is a demo, not a session store. */
const MAX_SESSIONS = 10_000;

interface PendingSignIn {
  codeVerifier: string;
  state: string;
  nonce: string;
  createdAt: number;
}

interface SignedIn {
  idToken: string;
  claims: Record<string, unknown>;
  userinfo: Record<string, unknown> | undefined;
  userinfoError: string | undefined;
  refreshTokenIssued: boolean;
}

interface Session {
  pending?: PendingSignIn;
  user?: SignedIn;
  /** The `state` sent with the logout request, checked when Tessera sends the browser back. */
  logoutState?: string;
  notice?: string;
  /** Synchronizer token for this app's one form (sign out). */
  csrfToken: string;
  touchedAt: number;
}

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLESHEET = `
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; line-height: 1.5; color: #1b1f24; background: #f6f3ee; }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem 1rem; }
main { max-width: 46rem; margin: 0 auto; background: #fff; border: 1px solid #d9d3c7; border-radius: 10px; padding: 2rem; }
header { max-width: 46rem; margin: 0 auto 1rem; font-weight: 700; }
h1 { font-size: 1.5rem; margin-top: 0; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
.button { display: inline-block; font: inherit; border: 0; cursor: pointer; background: #1f4fd1; color: #fff; padding: .7rem 1.1rem; border-radius: 6px; text-decoration: none; font-weight: 600; }
.button:focus-visible, a:focus-visible { outline: 3px solid #f5b400; outline-offset: 2px; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: 1.5rem 0; }
.notice { margin-top: 0; background: #eef4ff; border: 1px solid #9db5f0; border-radius: 6px; padding: .75rem 1rem; }
.alert { background: #fdecec; color: #a4161a; border: 1px solid currentColor; border-radius: 6px; padding: .75rem 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; border-bottom: 1px solid #e4e0d8; padding: .4rem .5rem; vertical-align: top; }
th { width: 12rem; font-weight: 600; }
td code { word-break: break-all; }
.muted { color: #4a5260; }
`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)} · Demo app</title>
  <link rel="stylesheet" href="/rp.css">
</head>
<body>
  <header>Demo app <span class="muted">(a relying party of Tessera)</span></header>
  <main>
${body}
  </main>
</body>
</html>
`;
}

function claimsTable(claims: Record<string, unknown>): string {
  const rows = Object.entries(claims).map(([name, value]) => {
    const shown = typeof value === 'string' ? value : JSON.stringify(value);
    const note = (name === 'iat' || name === 'exp' || name === 'auth_time') && typeof value === 'number'
      ? ` <span class="muted">(${escapeHtml(new Date(value * 1000).toISOString())})</span>`
      : '';
    return `      <tr><th scope="row">${escapeHtml(name)}</th><td><code>${escapeHtml(shown)}</code>${note}</td></tr>`;
  });
  return `<table>\n${rows.join('\n')}\n    </table>`;
}

function describeError(error: unknown): { code: string; description: string } {
  if (error instanceof oidc.AuthorizationResponseError) {
    return { code: error.error, description: error.error_description ?? '' };
  }
  if (error instanceof oidc.ResponseBodyError) {
    return { code: error.error, description: error.error_description ?? '' };
  }
  const coded = error as { code?: unknown; message?: unknown };
  return { code: typeof coded.code === 'string' ? coded.code : 'error', description: String(coded.message ?? error) };
}

/** Reads a small urlencoded body and checks its `_csrf` field in constant time. */
async function formHasToken(ctx: Context, expected: string): Promise<boolean> {
  if (!ctx.is('application/x-www-form-urlencoded')) return false;
  let body = '';
  for await (const chunk of ctx.req) {
    body += String(chunk);
    if (body.length > 4096) return false;
  }
  const token = new URLSearchParams(body).get('_csrf') ?? '';
  const a = Buffer.from(token);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startDemoRp(options: DemoRpOptions): Promise<RunningDemoRp> {
  const issuerUrl = new URL(options.issuer);
  const sessions = new Map<string, Session>();
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://localhost:${port}`;
  const redirectUri = `${baseUrl}/callback`;
  const postLogoutRedirectUri = `${baseUrl}/`;

  // Discovery runs on first use, not at start, so the RP may start before (or restart without) Tessera.
  let configuration: Promise<oidc.Configuration> | undefined;
  function oidcConfiguration(): Promise<oidc.Configuration> {
    configuration ??= oidc
      .discovery(issuerUrl, options.clientId, undefined, oidc.ClientSecretBasic(options.clientSecret), {
        // Development only: an http:// issuer on localhost. Real deployments use https and drop this.
        ...(issuerUrl.protocol === 'http:' && { execute: [oidc.allowInsecureRequests] }),
      })
      .catch((error: unknown) => {
        configuration = undefined;
        throw error;
      });
    return configuration;
  }

  function sweep(now: number): void {
    for (const [id, session] of sessions) {
      const ttl = session.user ? SESSION_TTL_MS : PENDING_TTL_MS;
      if (now - session.touchedAt > ttl) sessions.delete(id);
    }
    while (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
  }

  function sessionOf(ctx: Context): Session {
    const now = Date.now();
    let id = ctx.cookies.get(SESSION_COOKIE, { signed: true });
    let session = id ? sessions.get(id) : undefined;
    if (!id || !session) {
      sweep(now);
      id = randomBytes(32).toString('base64url');
      session = { touchedAt: now, csrfToken: randomBytes(16).toString('base64url') };
      sessions.set(id, session);
      ctx.cookies.set(SESSION_COOKIE, id, { signed: true, httpOnly: true, sameSite: 'lax', path: '/', overwrite: true });
    }
    session.touchedAt = now;
    return session;
  }

  const app = new Koa();
  app.keys = [randomBytes(32).toString('base64url')];
  app.silent = true;

  app.use(async function securityHeaders(ctx: Context, next: Next) {
    // form-action must allow Tessera too: Chrome applies it to the redirect that follows the sign-out POST.
    ctx.set('Content-Security-Policy', `default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' ${issuerUrl.origin}; frame-ancestors 'none'; base-uri 'none'`);
    // The callback URL carries the authorization code: never leak it in a Referer.
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  app.use(async function errorPage(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      const { code, description } = describeError(error);
      ctx.status = 502;
      ctx.type = 'html';
      ctx.body = page('Sign-in failed', `    <h1>Sign-in failed</h1>
    <div class="alert" role="alert"><p><code>${escapeHtml(code)}</code> ${escapeHtml(description)}</p></div>
    <p><a href="/">Back to the demo app</a></p>`);
    }
  });

  const router = new Router();

  router.get('/rp.css', function stylesheet(ctx) {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = STYLESHEET;
  });

  router.get('/', function home(ctx) {
    const session = sessionOf(ctx);
    if (session.logoutState && typeof ctx.query.state === 'string') {
      session.notice = ctx.query.state === session.logoutState
        ? 'You signed out of Tessera.'
        : 'The sign-out response did not match the request (state mismatch); ignoring it.';
      session.logoutState = undefined;
      ctx.redirect('/');
      return;
    }
    const notice = session.notice ? `    <p class="notice" role="status">${escapeHtml(session.notice)}</p>\n` : '';
    session.notice = undefined;

    const user = session.user;
    if (!user) {
      ctx.type = 'html';
      ctx.body = page('Welcome', `${notice}    <h1>Welcome to the demo app</h1>
    <p>This app has no passwords of its own. It lets Tessera, an OpenID Connect provider at
      <code>${escapeHtml(options.issuer)}</code>, tell it who you are.</p>
    <div class="actions">
      <a class="button" href="/login">Sign in with Tessera</a>
      <a href="/signup">Create an account</a>
    </div>`);
      return;
    }

    const who = user.claims.email ?? user.userinfo?.email ?? user.claims.sub;
    const userinfo = user.userinfo
      ? claimsTable(user.userinfo)
      : `<p class="alert">Userinfo request failed: ${escapeHtml(user.userinfoError ?? 'unknown error')}</p>`;
    ctx.type = 'html';
    ctx.body = page('Signed in', `${notice}    <h1>Signed in as ${escapeHtml(who)}</h1>
    <p>Tessera authenticated you; this app validated the ID token (signature, issuer, audience, nonce, expiry).
      ${user.refreshTokenIssued ? 'A refresh token was issued too.' : 'No refresh token was issued.'}</p>
    <form class="actions" method="post" action="/logout">
      <input type="hidden" name="_csrf" value="${escapeHtml(session.csrfToken)}">
      <button class="button" type="submit">Sign out</button>
    </form>
    <h2>ID token claims</h2>
    ${claimsTable(user.claims)}
    <h2>Userinfo response</h2>
    ${userinfo}`);
  });

  async function startSignIn(ctx: Context, extra: Record<string, string>) {
    const config = await oidcConfiguration();
    const session = sessionOf(ctx);
    const pending: PendingSignIn = {
      codeVerifier: oidc.randomPKCECodeVerifier(),
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      createdAt: Date.now(),
    };
    session.pending = pending;
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: DEMO_SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      ...extra,
    });
    ctx.redirect(url.href);
  }

  router.get('/login', async function login(ctx) {
    await startSignIn(ctx, {});
  });

  /** OpenID Connect "Initiating User Registration via OpenID Connect": Tessera opens on its sign-up page. */
  router.get('/signup', async function signup(ctx) {
    await startSignIn(ctx, { prompt: 'create' });
  });

  router.get('/callback', async function callback(ctx) {
    const session = sessionOf(ctx);
    const pending = session.pending;
    session.pending = undefined;
    if (!pending || Date.now() - pending.createdAt > PENDING_TTL_MS) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Sign-in expired', `    <h1>This sign-in has expired</h1>
    <p>Start again: <a href="/login">Sign in with Tessera</a>.</p>`);
      return;
    }
    const config = await oidcConfiguration();
    // Rebuild the URL from our own base, not from the Host header: it must equal the registered redirect URI.
    const currentUrl = new URL(ctx.originalUrl, baseUrl);
    const tokens = await oidc.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims()!;
    let userinfo: Record<string, unknown> | undefined;
    let userinfoError: string | undefined;
    try {
      userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    } catch (error) {
      userinfoError = describeError(error).description;
    }
    session.user = {
      idToken: tokens.id_token!,
      claims: { ...claims },
      userinfo,
      userinfoError,
      refreshTokenIssued: Boolean(tokens.refresh_token),
    };
    // Redirect so the code leaves the address bar and a reload does not replay it.
    ctx.redirect('/');
  });

  // A POST with a CSRF token, not a GET link: another site must not be able to sign people out.
  router.post('/logout', async function logout(ctx) {
    const session = sessionOf(ctx);
    if (!(await formHasToken(ctx, session.csrfToken))) {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = page('Form expired', `    <h1>This form expired</h1>
    <p><a href="/">Go back</a>, reload the page and try again.</p>`);
      return;
    }
    const user = session.user;
    session.user = undefined;
    if (!user) {
      ctx.status = 303;
      ctx.redirect('/');
      return;
    }
    const config = await oidcConfiguration();
    session.logoutState = oidc.randomState();
    const url = oidc.buildEndSessionUrl(config, {
      id_token_hint: user.idToken,
      post_logout_redirect_uri: postLogoutRedirectUri,
      state: session.logoutState,
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  server.on('request', app.callback());

  let closing: Promise<void> | undefined;
  return {
    url: baseUrl,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A browser may hold a request open; a demo need not wait for it.
        setTimeout(() => server.closeAllConnections(), 2_000).unref();
      });
      return closing;
    },
  };
}
