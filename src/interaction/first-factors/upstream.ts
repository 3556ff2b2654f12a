/**
 * Signing in through an upstream provider ("Continue with Google"), a first factor like the
 * password: it proves who the person is at the upstream, and then the shared step
 * (afterFirstFactor) applies the client's second-factor policy and consent as after a password.
 *
 * The round trip:
 * 1. GET or POST /interaction/<uid>/federation/<ID>: the interaction is loaded (its cookie is sent
 *    on this path); state, nonce and PKCE verifier are kept server-side, keyed by a digest of the
 *    random state and bound to this browser by a cookie of its own; the person goes to the upstream.
 * 2. GET /federation/<ID>/callback: one path per upstream, so an answer cannot be taken for another
 *    upstream's (mix-up). oidc-provider's interaction cookie is scoped to /interaction/<uid> and is
 *    not sent here, so the uid comes from the server-side state, which is taken once (a replayed or
 *    forged state finds nothing). The code is exchanged and the ID token validated (federation.ts).
 * 3. GET /interaction/<uid>/federation/<ID>/done: back where the interaction cookie is sent; the
 *    identity's account is found, made, linked or, when an existing account has that address and the
 *    upstream may not vouch for it, the person is asked to prove that account (the link is made when
 *    that sign-in completes, second factor included).
 *
 * Every failure is a readable page (4xx) with a way on: try again, or use another way to sign in.
 */
import { createHash, randomBytes } from 'node:crypto';

import Router from '@koa/router';
import type { Context } from 'koa';

import type { Federation } from '../../domain/federation.ts';
import type { IdentityService, UpstreamProfile } from '../../domain/identities.ts';
import { upstreamOnly } from '../../domain/mfa/assurance.ts';
import type { SecurityEvents } from '../../domain/events.ts';
import { UPSTREAM_HINT_PARAMETERS, type UpstreamService } from '../../domain/upstreams.ts';
import { AppError, isAppError } from '../../errors.ts';
import { secureCookieName, UPSTREAM_FLOW_COOKIE } from '../../http/cookie-names.ts';
import type { RateLimits } from '../../http/rate-limit.ts';
import { renderPage } from '../../http/render.ts';
import type { Logger } from '../../log.ts';
import type { OidcStore } from '../../store/port.ts';
import type { AfterFirstFactor } from '../after-first-factor.ts';
import { signingIn, type Interaction, type InteractionToolkit, type SignInStep } from '../toolkit.ts';
import type { ShowSignInPage } from './sign-in-page.ts';

export interface UpstreamSignInDependencies {
  upstreams: UpstreamService;
  identities: IdentityService;
  federation: Federation;
  oidc: OidcStore;
  rateLimits: RateLimits;
  logger: Logger;
  events: SecurityEvents;
  /** How long a started round trip may take before its state expires (the interaction's lifetime, at most). */
  flowTtlSeconds: number;
}

/** Server-side records, in the oidc store like other short-lived interaction data. */
const FLOW = 'UpstreamFlow';
const RESULT = 'UpstreamResult';
const PENDING_LINK = 'UpstreamLink';
const RESULT_TTL_SECONDS = 120;
/** The cookie binding a round trip to the browser that started it is scoped to the callback paths only. */
const COOKIE_PATH = '/federation/';

interface FlowRecord {
  [key: string]: unknown;
  /** Signing in within an interaction, or linking another upstream to a signed-in account (the account page). */
  purpose: 'sign-in' | 'link';
  /** The interaction, for a sign-in. */
  uid: string;
  /** The account, for a link. */
  accountSub?: string;
  upstreamId: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  browser: string;
}

function digest(value: string): string {
  return createHash('sha256').update(`tessera upstream ${value}`).digest('base64url');
}

export interface UpstreamSignIn {
  /** The "Continue with NAME" controls of the login page. */
  controls(uid: string): Promise<Array<{ id: string; name: string; action: string }>>;
  /** The upstream an authorization request names with upstream_hint (or kc_idp_hint), if it exists. */
  hinted(interaction: Interaction): Promise<string | undefined>;
  /** Starts the round trip to that upstream (also the hint's way in). */
  start(ctx: Context, interaction: Interaction, id: string): Promise<void>;
  /** Called when any sign-in of the interaction completes: makes a link the person proved the account for. */
  signedIn(uid: string, accountSub: string): Promise<void>;
  /** The first-factor step: /federation/<ID> and /federation/<ID>/done under the interaction router. */
  step(parts: { toolkit: InteractionToolkit; after: AfterFirstFactor; showSignInPage: ShowSignInPage }): SignInStep;
  /** The callback router, /federation/<ID>/callback, outside the interaction's cookie path. */
  callbackRouter(): Router;
  /** The account page's "Link": a round trip for an account already signed in; it comes back to /account/identities/done. */
  startLink(ctx: Context, accountSub: string, id: string): Promise<void>;
  /** The profile a link round trip brought back, once, for the account that started it. */
  takeLinkResult(handle: string, accountSub: string): Promise<{ upstreamId: string; profile: UpstreamProfile } | undefined>;
}

/** Where a link round trip started on the account page comes back to. */
export const LINK_DONE_PATH = '/account/identities/done';

export function upstreamSignIn(deps: UpstreamSignInDependencies): UpstreamSignIn {
  const { upstreams, identities, federation, oidc, rateLimits, logger, events, flowTtlSeconds } = deps;

  async function failurePage(ctx: Context, error: AppError, way: { uid?: string; id?: string; name?: string; account?: boolean } = {}): Promise<void> {
    ctx.status = error.status >= 400 && error.status < 500 ? error.status : 400;
    ctx.set('Cache-Control', 'no-store');
    await renderPage(ctx, 'upstream-error', {
      provider: way.name,
      description: error.message,
      tryAgain: way.uid && way.id ? `/interaction/${way.uid}/federation/${way.id}` : undefined,
      anotherWay: way.uid ? `/interaction/${way.uid}/login` : undefined,
      backToAccount: way.account ? '/account#identities' : undefined,
    });
  }

  function refused(uid: string | undefined, upstreamId: string, reason: string, sub?: string): void {
    events.emit({ type: 'signin.failed', ...(sub !== undefined && { sub }), details: { factor: 'upstream', upstream: upstreamId, reason } });
    logger.info({ upstream: upstreamId, uid, reason }, 'upstream sign-in refused');
  }

  /** Sends the browser to the upstream; the state, nonce and verifier wait server-side, bound to this browser. */
  async function redirectToUpstream(ctx: Context, id: string, purpose: { uid: string } | { accountSub: string }, onFailure: (error: AppError, name?: string) => Promise<void>): Promise<void> {
    const upstream = await upstreams.withSecret(id);
    if (!upstream) return onFailure(new AppError('ERR_NOT_FOUND', 'This way to sign in is not offered (any more). Use another way to sign in.'));
    let begun: Awaited<ReturnType<Federation['begin']>>;
    try {
      begun = await federation.begin(upstream, upstreams.redirectUri(id));
    } catch (error) {
      if (!isAppError(error, 'ERR_UPSTREAM_FAILED')) throw error;
      refused('uid' in purpose ? purpose.uid : undefined, id, reasonOf(error), 'accountSub' in purpose ? purpose.accountSub : undefined);
      logger.warn({ err: error.cause ?? error, upstream: id }, 'could not start an upstream sign-in');
      return onFailure(error, upstream.name);
    }
    const browser = randomBytes(32).toString('base64url');
    const flow: FlowRecord = 'uid' in purpose
      ? { purpose: 'sign-in', uid: purpose.uid, upstreamId: id, ...begun.secrets, browser: digest(browser) }
      : { purpose: 'link', uid: '', accountSub: purpose.accountSub, upstreamId: id, ...begun.secrets, browser: digest(browser) };
    await oidc.upsert(FLOW, digest(begun.secrets.state), flow, flowTtlSeconds);
    ctx.cookies.set(secureCookieName(ctx, UPSTREAM_FLOW_COOKIE), browser, { httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: COOKIE_PATH, maxAge: flowTtlSeconds * 1000, overwrite: true });
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ctx.method === 'POST' ? 303 : 302;
    ctx.redirect(begun.url.href);
  }

  async function start(ctx: Context, interaction: Interaction, id: string): Promise<void> {
    await redirectToUpstream(ctx, id, { uid: interaction.uid }, (error, name) => failurePage(ctx, error, {
      uid: interaction.uid, ...(name !== undefined && { id, name }),
    }));
  }

  async function callback(ctx: Context): Promise<void> {
    const id = String(ctx.params.id);
    ctx.set('Cache-Control', 'no-store');
    // Each answer costs an exchange with the upstream: counted like a sign-in attempt from this address.
    await rateLimits.upstreamCallback(ctx);
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const flow = state ? await oidc.take(FLOW, digest(state)) as FlowRecord | undefined : undefined;
    const browser = ctx.cookies.get(secureCookieName(ctx, UPSTREAM_FLOW_COOKIE));
    if (!flow || flow.upstreamId !== id || !browser || digest(browser) !== flow.browser) {
      refused(flow?.uid, id, 'invalid_state');
      return failurePage(ctx, new AppError('ERR_UPSTREAM_FAILED', 'This answer does not belong to a sign-in started in this browser, or it was used already. Go back to the app and sign in again.'));
    }
    ctx.cookies.set(secureCookieName(ctx, UPSTREAM_FLOW_COOKIE), null, { secure: ctx.secure, path: COOKIE_PATH, overwrite: true });
    const upstream = await upstreams.withSecret(id);
    if (!upstream) {
      refused(flow.uid, id, 'upstream_gone');
      return failurePage(ctx, new AppError('ERR_UPSTREAM_FAILED', 'This way to sign in is no longer offered. Use another way to sign in.'), flow.uid ? { uid: flow.uid } : { account: true });
    }
    let profile: UpstreamProfile;
    try {
      profile = await federation.complete(upstream, upstreams.redirectUri(id), ctx.querystring, flow);
    } catch (error) {
      if (!isAppError(error, 'ERR_UPSTREAM_FAILED')) throw error;
      refused(flow.uid, id, reasonOf(error));
      if (reasonOf(error) !== 'access_denied') logger.warn({ err: error.cause ?? error, upstream: id }, 'upstream sign-in failed');
      return failurePage(ctx, error, flow.purpose === 'link' ? { name: upstream.name, account: true } : { uid: flow.uid, id, name: upstream.name });
    }
    if (flow.purpose === 'link') {
      // Back to the account page, which links it if the same account is still signed in there.
      const handle = randomBytes(24).toString('base64url');
      await oidc.upsert(RESULT, digest(handle), { upstreamId: id, accountSub: flow.accountSub, profile: { ...profile } }, RESULT_TTL_SECONDS);
      ctx.status = 303;
      ctx.redirect(`${LINK_DONE_PATH}?handle=${handle}`);
      return;
    }
    await oidc.upsert(RESULT, flow.uid, { upstreamId: id, profile: { ...profile } }, RESULT_TTL_SECONDS);
    ctx.status = 303;
    ctx.redirect(`/interaction/${flow.uid}/federation/${id}/done`);
  }

  async function done(ctx: Context, { toolkit, after, showSignInPage }: Parameters<UpstreamSignIn['step']>[0]): Promise<void> {
    const interaction = await toolkit.loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    const id = String(ctx.params.id);
    const result = await oidc.take(RESULT, interaction.uid) as { upstreamId: string; profile: UpstreamProfile } | undefined;
    const upstream = await upstreams.find(id);
    if (!result || result.upstreamId !== id || !upstream) {
      return failurePage(ctx, new AppError('ERR_UPSTREAM_FAILED', 'This sign-in expired or was finished already.'), { uid: interaction.uid, id, ...(upstream && { name: upstream.name }) });
    }
    if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
    try {
      const outcome = await identities.signIn(upstream, result.profile);
      if (outcome.outcome === 'needs-proof') {
        // Never signed in as that account on the strength of an address: the person proves it, or stops.
        await oidc.upsert(PENDING_LINK, interaction.uid, {
          upstreamId: id, subject: result.profile.subject, accountSub: outcome.account.sub, email: outcome.account.email,
        }, flowTtlSeconds);
        logger.info({ upstream: id, sub: outcome.account.sub }, 'upstream identity matches an existing account by email: asking for proof');
        ctx.status = 200;
        return showSignInPage(ctx, interaction, {
          email: outcome.account.email,
          notice: `An account with ${outcome.account.email} already exists. Sign in to it to link your ${upstream.name} sign-in, or use another way to sign in.`,
        });
      }
      logger.info({ upstream: id, sub: outcome.account.sub, created: outcome.created }, 'upstream sign-in succeeded');
      events.emit({
        type: 'identity.signed_in',
        sub: outcome.account.sub,
        clientId: String(interaction.params.client_id),
        details: { upstream: id, created: outcome.created },
      });
      await after.afterFirstFactor(ctx, interaction, outcome.account, upstreamOnly());
    } catch (error) {
      if (isAppError(error, 'ERR_ACCOUNT_DISABLED')) {
        refused(interaction.uid, id, 'disabled_or_locked');
        return failurePage(ctx, error, { uid: interaction.uid });
      }
      if (!isAppError(error, 'ERR_UPSTREAM_FAILED')) throw error;
      refused(interaction.uid, id, reasonOf(error));
      return failurePage(ctx, error, { uid: interaction.uid, id, name: upstream.name });
    }
  }

  return {
    async controls(uid) {
      return (await upstreams.list()).map((upstream) => ({ id: upstream.id, name: upstream.name, action: `/interaction/${uid}/federation/${upstream.id}` }));
    },

    async hinted(interaction) {
      for (const name of UPSTREAM_HINT_PARAMETERS) {
        const hint = interaction.params[name];
        if (typeof hint === 'string' && hint && await upstreams.find(hint)) return hint;
      }
      return undefined;
    },

    start,

    async signedIn(uid, accountSub) {
      const pending = await oidc.take(PENDING_LINK, uid) as { upstreamId: string; subject: string; accountSub: string; email: string } | undefined;
      // Proving a different account than the one with that address links nothing.
      if (!pending || pending.accountSub !== accountSub) return;
      try {
        await identities.link(pending.upstreamId, pending.subject, accountSub, pending.email, 'proved_account');
        logger.info({ upstream: pending.upstreamId, sub: accountSub }, 'upstream identity linked after the person proved the account');
      } catch (error) {
        if (!isAppError(error, 'ERR_IDENTITY_TAKEN')) throw error;
      }
    },

    step(parts) {
      return {
        register(router: Router) {
          const begin = async function startUpstreamSignIn(ctx: Context) {
            const interaction = await parts.toolkit.loadInteraction(ctx);
            if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
            await start(ctx, interaction, String(ctx.params.id));
          };
          router.get('/federation/:id', begin);
          router.post('/federation/:id', begin);
          router.get('/federation/:id/done', async function finishUpstreamSignIn(ctx) {
            await done(ctx, parts);
          });
        },
      };
    },

    async startLink(ctx, accountSub, id) {
      await redirectToUpstream(ctx, id, { accountSub }, (error, name) => failurePage(ctx, error, { account: true, ...(name !== undefined && { name }) }));
    },

    async takeLinkResult(handle, accountSub) {
      const result = await oidc.take(RESULT, digest(handle)) as { upstreamId: string; accountSub: string; profile: UpstreamProfile } | undefined;
      return result && result.accountSub === accountSub ? { upstreamId: result.upstreamId, profile: result.profile } : undefined;
    },

    callbackRouter() {
      const router = new Router();
      router.get('/federation/:id/callback', async function upstreamCallback(ctx) {
        await callback(ctx);
      });
      return router;
    },
  };
}

function reasonOf(error: AppError): string {
  return String((error as AppError & { reason?: unknown }).reason ?? 'failed');
}
