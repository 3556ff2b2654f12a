/**
 * The interaction pages oidc-provider sends people to: sign in, create an account, consent.
 * Server-rendered, no JavaScript needed, every POST carries a CSRF token and answers 303 on success.
 * A refused form is shown again with a 4xx status and a plain explanation.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults, Provider } from 'oidc-provider';

import { INVALID_CREDENTIALS, type AccountService } from '../domain/accounts.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import type { SecurityEvents } from '../domain/events.ts';
import { passwordOnly } from '../domain/mfa/assurance.ts';
import type { SecondFactorService } from '../domain/second-factors.ts';
import { AppError, isAppError } from '../errors.ts';
import { csrfProtection } from '../http/csrf.ts';
import { formField } from '../http/form.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';
import type { UpstreamSignIn } from './first-factors/upstream.ts';
import { describeClaims, describeScopes } from './scopes.ts';
import { secondFactorSteps } from './second-factor.ts';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionRouterDependencies {
  provider: () => Provider;
  accounts: AccountService;
  logger: Logger;
  rateLimits: RateLimits;
  emailVerification: EmailVerification;
  secondFactors: SecondFactorService;
  events: SecurityEvents;
  /** Sign-in through upstream providers (first-factors/upstream.ts). */
  upstreams: UpstreamSignIn;
}

export function interactionRouter({ provider, accounts, logger, rateLimits, emailVerification, secondFactors, events, upstreams }: InteractionRouterDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  // Second factors, enrolment and passkeys (second-factor.ts) share this router's helpers and middleware.
  const mfa = secondFactorSteps({
    provider, accounts, secondFactors, logger, events, loadInteraction, finish, clientOf, showLogin,
    limitSecondFactor: (ctx, sub) => rateLimits.secondFactor(ctx, sub),
  });

  /** Loads the interaction bound to this browser; the uid in the path must be the one in the cookie. */
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
    return interaction;
  }

  async function clientOf(interaction: Interaction) {
    const client = await provider().Client.find(String(interaction.params.client_id));
    return {
      name: client?.clientName ?? String(interaction.params.client_id),
      logoUri: client?.logoUri,
      clientUri: client?.clientUri,
      policyUri: client?.policyUri,
      tosUri: client?.tosUri,
    };
  }

  /**
   * Every finished step (password, second factor, passkey, new account, consent) passes here; each
   * completed sign-in emits one `signin.succeeded`.
   *
   * One authorization request often takes two interactions (sign in, then consent), and on each
   * return oidc-provider checks every prompt the request named (prompt=create, prompt=login) against
   * the result. So the result is merged with the earlier interaction's (oidc-provider's default,
   * `lastSubmission`): replacing it made consent drop `create` and `login`, and the registration or
   * sign-in page came back in a loop. Error results are never merged.
   */
  async function finish(ctx: Context, result: InteractionResults): Promise<void> {
    const login = result.login as { accountId?: unknown; amr?: unknown } | undefined;
    // A link to an upstream identity the person proved this account for is made only now, once the whole sign-in holds.
    if (typeof login?.accountId === 'string') await upstreams.signedIn(String(ctx.params.uid), login.accountId);
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

  async function showLogin(ctx: Context, interaction: Interaction, extra: { email?: string; error?: string; notice?: string } = {}) {
    await renderPage(ctx, 'login', {
      title: 'Sign in',
      uid: interaction.uid,
      client: await clientOf(interaction),
      email: extra.email ?? (typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : ''),
      error: extra.error,
      notice: extra.notice,
      upstreams: await upstreams.controls(interaction.uid),
    });
  }

  async function showRegister(ctx: Context, interaction: Interaction, extra: { values?: Record<string, string>; error?: string } = {}) {
    await renderPage(ctx, 'register', {
      title: 'Create your account',
      uid: interaction.uid,
      client: await clientOf(interaction),
      values: extra.values ?? {},
      error: extra.error,
      passwordMinLength: accounts.passwordPolicy.minLength,
      passwordMaxLength: accounts.passwordPolicy.maxLength,
      passwordHint: accounts.passwordPolicy.hint,
    });
  }

  async function showConsent(ctx: Context, interaction: Interaction) {
    const details = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
    const requested = String(interaction.params.scope ?? '').split(' ').filter(Boolean);
    const claimsParam = typeof interaction.params.claims === 'string' ? safeClaimNames(interaction.params.claims) : [];
    await renderPage(ctx, 'consent', {
      title: 'Allow access',
      uid: interaction.uid,
      client: await clientOf(interaction),
      scopes: describeScopes(requested.length ? requested : details.missingOIDCScope ?? []),
      claims: describeClaims([...(details.missingOIDCClaims ?? []), ...claimsParam]),
    });
  }

  router.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' }));
  router.use(csrfProtection);

  router.get('/', async function showInteraction(ctx) {
    const interaction = await loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    switch (interaction.prompt.name) {
      case 'create':
        return showRegister(ctx, interaction);
      case 'login': {
        if (await mfa.stepUp(ctx, interaction)) return;
        // upstream_hint (or Keycloak's kc_idp_hint) sends the person straight to that upstream.
        const hinted = await upstreams.hinted(interaction);
        if (hinted) return upstreams.start(ctx, interaction, hinted);
        return showLogin(ctx, interaction);
      }
      case 'consent':
        return showConsent(ctx, interaction);
      default:
        throw new AppError('ERR_INVALID_INPUT', `Unsupported interaction "${interaction.prompt.name}"`);
    }
  });

  router.get('/register', async function showRegistration(ctx) {
    const interaction = await loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (interaction.prompt.name === 'consent') return showConsent(ctx, interaction);
    return showRegister(ctx, interaction);
  });

  // The registration page's "Sign in" link: under prompt=create the interaction's own page is the registration form.
  router.get('/login', async function showSignIn(ctx) {
    const interaction = await loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (interaction.prompt.name === 'consent') return showConsent(ctx, interaction);
    if (interaction.prompt.name === 'login' && await mfa.stepUp(ctx, interaction)) return;
    return showLogin(ctx, interaction);
  });

  router.post('/login', async function submitLogin(ctx) {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name === 'consent') throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
    const email = formField(ctx, 'email');
    await rateLimits.signIn(ctx, email);
    try {
      const account = await accounts.authenticate(email, formField(ctx, 'password'), { clientId: String(interaction.params.client_id) });
      logger.info({ sub: account.sub, clientId: interaction.params.client_id }, 'sign-in succeeded');
      await mfa.afterPassword(ctx, interaction, account);
    } catch (error) {
      if (!isAppError(error, 'ERR_INVALID_CREDENTIALS')) throw error;
      logger.info({ clientId: interaction.params.client_id }, 'sign-in failed');
      ctx.status = 401;
      await showLogin(ctx, interaction, { email, error: INVALID_CREDENTIALS });
    }
  });

  router.post('/register', async function submitRegistration(ctx) {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name === 'consent') throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
    // Every attempt counts: the "already exists" answer must not become a fast way to list accounts.
    await rateLimits.registration(ctx);
    const values = {
      email: formField(ctx, 'email'),
      name: formField(ctx, 'name'),
      givenName: formField(ctx, 'given_name'),
      familyName: formField(ctx, 'family_name'),
    };
    const password = formField(ctx, 'password');
    if (password !== formField(ctx, 'password_confirmation')) {
      ctx.status = 400;
      return showRegister(ctx, interaction, { values, error: 'The two passwords do not match' });
    }
    try {
      const account = await accounts.register({ ...values, password });
      logger.info({ sub: account.sub, clientId: interaction.params.client_id }, 'account registered');
      emailVerification.send(account).catch((error: unknown) => logger.error({ err: error, sub: account.sub }, 'could not send the verification email'));
      // Under prompt=create, finish also records `create` as resolved (see recorded()).
      await finish(ctx, { login: { accountId: account.sub, ...passwordOnly() } });
    } catch (error) {
      if (isAppError(error, 'ERR_INVALID_INPUT')) {
        ctx.status = 400;
        return showRegister(ctx, interaction, { values, error: error.message });
      }
      if (isAppError(error, 'ERR_EMAIL_TAKEN')) {
        ctx.status = 409;
        return showRegister(ctx, interaction, { values, error: 'An account with this email already exists. Sign in instead.' });
      }
      throw error;
    }
  });

  router.post('/consent', async function submitConsent(ctx) {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name !== 'consent') throw new AppError('ERR_INVALID_INPUT', 'There is nothing to consent to yet.');
    const decision = formField(ctx, 'decision');
    if (decision === 'deny') {
      logger.info({ sub: interaction.session?.accountId, clientId: interaction.params.client_id }, 'consent denied');
      events.emit({
        type: 'consent.denied',
        ...(typeof interaction.session?.accountId === 'string' && { sub: interaction.session.accountId }),
        clientId: String(interaction.params.client_id),
      });
      return finish(ctx, { error: 'access_denied', error_description: 'The person declined to grant access' });
    }
    if (decision !== 'allow') throw new AppError('ERR_INVALID_INPUT', 'Choose Allow or Deny.');

    const { Grant } = provider();
    const accountId = interaction.session?.accountId;
    const clientId = String(interaction.params.client_id);
    const grant = (interaction.grantId ? await Grant.find(interaction.grantId) : undefined) ?? new Grant({ accountId, clientId });
    const details = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    logger.info({ sub: accountId, clientId }, 'consent given');
    events.emit({
      type: 'consent.given',
      ...(typeof accountId === 'string' && { sub: accountId }),
      clientId,
      details: {
        scopes: details.missingOIDCScope ?? [],
        claims: details.missingOIDCClaims ?? [],
        resources: Object.entries(details.missingResourceScopes ?? {}).map(([indicator, scopes]) => `${indicator} ${scopes.join(' ')}`),
      },
    });
    await finish(ctx, { consent: { grantId } });
  });

  router.post('/abort', async function abortInteraction(ctx) {
    await loadInteraction(ctx);
    await finish(ctx, { error: 'access_denied', error_description: 'The person cancelled the sign-in' });
  });

  mfa.register(router);
  upstreams.register(router, { loadInteraction, afterFirstFactor: mfa.afterFirstFactor, showLogin });
  return router;
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

/** Claim names from a `claims` request parameter (already validated by oidc-provider). */
function safeClaimNames(claims: string): string[] {
  try {
    const parsed = JSON.parse(claims) as { id_token?: object; userinfo?: object };
    return [...Object.keys(parsed.id_token ?? {}), ...Object.keys(parsed.userinfo ?? {})];
  } catch {
    return [];
  }
}
