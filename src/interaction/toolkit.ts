/**
 * What every sign-in step shares: loading the interaction bound to this browser and its client,
 * finishing it (the one place a `signin.succeeded` is emitted), redirects between steps, and the
 * "refuse, then show the form again" answer. A step module (a first factor, a second-factor step,
 * consent) gets one toolkit and never reaches oidc-provider's interaction API any other way.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults, Provider } from 'oidc-provider';

import type { SecurityEvents } from '../domain/events.ts';
import { registeredKind, type RegisteredKind } from '../domain/registered-clients.ts';
import { AppError, isAppError } from '../errors.ts';
import { rememberRequestedLocales } from '../http/locale.ts';

export type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** One step of the sign-in (a first factor, a second-factor step, consent): its routes under /interaction/:uid. */
export interface SignInStep {
  /** Adds the step's routes (after the interaction router's body parser and CSRF middleware). */
  register(router: Router): void;
}

/** Refusals of a factor a person can fix (a wrong code, a cancelled passkey): the form again; anything else propagates. */
export function isFactorRefusal(error: unknown): error is AppError {
  return isAppError(error, 'ERR_SECOND_FACTOR_INVALID') || isAppError(error, 'ERR_SECOND_FACTOR_UNAVAILABLE');
}

/** What the pages show about the app a person is signing in to. */
export interface ClientView {
  name: string;
  logoUri?: string | undefined;
  clientUri?: string | undefined;
  policyUri?: string | undefined;
  tosUri?: string | undefined;
  /** The client came by itself (dynamic registration, a metadata document): nobody vouched for its name. */
  registered?: RegisteredKind | undefined;
}

export interface InteractionToolkit {
  provider: () => Provider;
  /** Loads the interaction bound to this browser; the uid in the path must be the one in the cookie. */
  loadInteraction(ctx: Context): Promise<Interaction>;
  clientOf(interaction: Interaction): Promise<ClientView>;
  /** Every finished step (any factor, a new account, consent) passes here; each completed sign-in emits one `signin.succeeded`. */
  finish(ctx: Context, result: InteractionResults): Promise<void>;
  /** 303 after a POST (the browser GETs the next step), 302 otherwise. */
  redirect(ctx: Context, location: string): void;
  /** The path of a step of this interaction, e.g. `path(uid, '/second-factor')`. */
  path(uid: string, step?: string): string;
  /**
   * A refusal a person can fix: the status, then the same form again with what they typed and why.
   * Every step answers a refused form this way, so none of them can forget the status.
   */
  refuse<V>(ctx: Context, status: number, render: (values: V) => Promise<void>, values: V): Promise<void>;
  /** A `signin.failed` for a factor other than the password (accounts.ts reports those); `sub` when known. */
  signInRefused(interaction: Interaction, sub: string | undefined, factor: string, reason: string): void;
}

/** A sign-in is under way on the login prompt, or on prompt=create's page for someone who has an account already. */
export function signingIn(interaction: Interaction): boolean {
  return interaction.prompt.name === 'login' || interaction.prompt.name === 'create';
}

/**
 * What an interaction result must carry beyond the step's own answer:
 * - a sign-in (new account, password, passkey, second factor) on the `create` prompt resolves
 *   prompt=create: the person registered, or had an account and chose to sign in instead;
 * - the time of the sign-in, because the merged login is applied again when a later step (consent)
 *   finishes, and must not move `auth_time` to that moment.
 */
function recorded(result: InteractionResults, prompt: string | undefined): InteractionResults {
  if (!result.login) return result;
  return {
    ...result,
    login: { ts: Math.floor(Date.now() / 1000), ...result.login },
    ...(prompt === 'create' && { create: {} }),
  };
}

export interface InteractionToolkitDependencies {
  provider: () => Provider;
  events: SecurityEvents;
  /**
   * Told when a sign-in of the interaction completes (second factor included), before oidc-provider
   * hears of it: an upstream identity the person proved this account for is linked only then.
   */
  onSignedIn?(uid: string, accountSub: string): Promise<void>;
}

export function interactionToolkit({ provider, events, onSignedIn }: InteractionToolkitDependencies): InteractionToolkit {
  async function loadInteraction(ctx: Context): Promise<Interaction> {
    let interaction: Interaction;
    try {
      interaction = await provider().interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      // A store outage is not an expired page: it answers 503 and the same page works again later.
      if ((error as { status?: unknown }).status === 503) throw error;
      throw new AppError('ERR_INTERACTION_EXPIRED', 'This sign-in page has expired. Go back to the app and start again.', { cause: error });
    }
    if (interaction.uid !== ctx.params.uid) {
      throw new AppError('ERR_INTERACTION_EXPIRED', 'This sign-in page has expired. Go back to the app and start again.');
    }
    ctx.state.interactionClientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : undefined;
    ctx.state.interactionPrompt = interaction.prompt.name;
    rememberRequestedLocales(ctx, interaction.params);
    return interaction;
  }

  async function clientOf(interaction: Interaction): Promise<ClientView> {
    const client = await provider().Client.find(String(interaction.params.client_id));
    const registered = registeredKind(client as unknown as Record<string, unknown> | undefined);
    return {
      name: client?.clientName ?? String(interaction.params.client_id),
      // A logo is the easiest thing to borrow from a better-known app: not shown for a client nobody vetted.
      logoUri: registered ? undefined : client?.logoUri,
      registered,
      clientUri: client?.clientUri,
      policyUri: client?.policyUri,
      tosUri: client?.tosUri,
    };
  }

  /**
   * One authorization request often takes two interactions (sign in, then consent), and on each
   * return oidc-provider checks every prompt the request named (prompt=create, prompt=login) against
   * the result. So the result is merged with the earlier interaction's (oidc-provider's default,
   * `lastSubmission`): replacing it made consent drop `create` and `login`, and the registration or
   * sign-in page came back in a loop. Error results are never merged.
   */
  async function finish(ctx: Context, result: InteractionResults): Promise<void> {
    const login = result.login as { accountId?: unknown; amr?: unknown } | undefined;
    if (typeof login?.accountId === 'string' && onSignedIn) await onSignedIn(String(ctx.params.uid), login.accountId);
    const returnTo = await provider().interactionResult(ctx.req, ctx.res, recorded(result, ctx.state.interactionPrompt as string | undefined));
    if (typeof login?.accountId === 'string') {
      const clientId = ctx.state.interactionClientId as string | undefined;
      events.emit({
        type: 'signin.succeeded',
        sub: login.accountId,
        ...(clientId !== undefined && { clientId }),
        details: { amr: Array.isArray(login.amr) ? login.amr.map(String) : [] },
      });
    }
    ctx.status = 303;
    ctx.redirect(returnTo);
  }

  function redirect(ctx: Context, location: string): void {
    ctx.status = ctx.method === 'POST' ? 303 : 302;
    ctx.redirect(location);
  }

  function path(uid: string, step = ''): string {
    return `/interaction/${uid}${step}`;
  }

  async function refuse<V>(ctx: Context, status: number, render: (values: V) => Promise<void>, values: V): Promise<void> {
    ctx.status = status;
    await render(values);
  }

  function signInRefused(interaction: Interaction, sub: string | undefined, factor: string, reason: string): void {
    events.emit({ type: 'signin.failed', ...(sub !== undefined && { sub }), clientId: String(interaction.params.client_id), details: { reason, factor } });
  }

  return { provider, loadInteraction, clientOf, finish, redirect, path, refuse, signInRefused };
}
