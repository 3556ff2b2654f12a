/**
 * The interaction pages oidc-provider sends people to: sign in, create an account, consent.
 * Server-rendered, no JavaScript needed, every POST carries a CSRF token and answers 303 on success.
 * A refused form is shown again with a 4xx status and a plain explanation (toolkit.refuse).
 *
 * This module only composes the steps: the toolkit every step shares, the first factors (each ends
 * in afterFirstFactor), the second-factor steps, registration and consent. A new way to sign in is
 * one module under first-factors/ and one entry in `firstFactors`.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Provider } from 'oidc-provider';

import type { AccountService } from '../domain/accounts.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import type { SecurityEvents } from '../domain/events.ts';
import type { SecondFactorService } from '../domain/second-factors.ts';
import { AppError } from '../errors.ts';
import { csrfProtection } from '../http/csrf.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';
import { afterFirstFactorStep } from './after-first-factor.ts';
import { consent, type ResourceNames } from './consent.ts';
import { passkeySignIn } from './first-factors/passkey.ts';
import { passwordSignIn } from './first-factors/password.ts';
import type { UpstreamSignIn } from './first-factors/upstream.ts';
import { signInPage } from './first-factors/sign-in-page.ts';
import { registration } from './registration.ts';
import { enrolSecondFactor } from './second-factors/enrol.ts';
import { pendingSteps } from './second-factors/pending-step.ts';
import { proveSecondFactor } from './second-factors/prove.ts';
import { interactionToolkit, type SignInStep } from './toolkit.ts';

export interface InteractionRouterDependencies {
  provider: () => Provider;
  accounts: AccountService;
  logger: Logger;
  rateLimits: RateLimits;
  emailVerification: EmailVerification;
  secondFactors: SecondFactorService;
  events: SecurityEvents;
  /** Sign-in through upstream providers; its callback is a router of its own (outside the interaction's cookie path). */
  upstreams: UpstreamSignIn;
  /** Resource servers by indicator: the consent page names the API an app asks for. */
  resources?: ResourceNames | undefined;
}

export function interactionRouter({ provider, accounts, logger, rateLimits, emailVerification, secondFactors, events, upstreams, resources }: InteractionRouterDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  const toolkit = interactionToolkit({ provider, events, onSignedIn: (uid, sub) => upstreams.signedIn(uid, sub) });
  const after = afterFirstFactorStep({ toolkit, accounts, secondFactors, logger });
  const showSignInPage = signInPage(toolkit, (uid) => upstreams.controls(uid));
  const limitSecondFactor = rateLimits.secondFactor.bind(rateLimits);
  const steps = pendingSteps({ toolkit, accounts, secondFactors, logger });
  const consentStep = consent({ toolkit, logger, events, resources, accountEmail: async (sub) => (await accounts.findBySub(sub))?.email });
  const registrationStep = registration({
    toolkit, accounts, emailVerification, logger, limitRegistration: rateLimits.registration.bind(rateLimits), showConsent: consentStep.showConsent,
  });

  /** Every way to prove who you are first; each ends in after.afterFirstFactor. */
  const firstFactors: SignInStep[] = [
    passwordSignIn({ toolkit, after, showSignInPage, accounts, logger, limitSignIn: rateLimits.signIn.bind(rateLimits) }),
    passkeySignIn({ toolkit, after, showSignInPage, secondFactors, logger, limitPasswordless: rateLimits.passwordlessSignIn.bind(rateLimits) }),
    upstreams.step({ toolkit, after, showSignInPage }),
  ];
  const secondFactorSteps: SignInStep[] = [
    proveSecondFactor({ toolkit, steps, secondFactors, logger, limitSecondFactor }),
    enrolSecondFactor({ toolkit, steps, secondFactors, logger, limitSecondFactor }),
  ];

  router.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' }));
  router.use(csrfProtection);

  router.get('/', async function showInteraction(ctx) {
    const interaction = await toolkit.loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    switch (interaction.prompt.name) {
      case 'create':
        return registrationStep.showRegister(ctx, interaction);
      case 'login': {
        if (await after.stepUp(ctx, interaction)) return;
        // upstream_hint (or Keycloak's kc_idp_hint) sends the person straight to that upstream.
        const hinted = await upstreams.hinted(interaction);
        if (hinted) return upstreams.start(ctx, interaction, hinted);
        return showSignInPage(ctx, interaction);
      }
      case 'consent':
        return consentStep.showConsent(ctx, interaction);
      default:
        throw new AppError('ERR_INVALID_INPUT', `Unsupported interaction "${interaction.prompt.name}"`);
    }
  });

  // The registration page's "Sign in" link: under prompt=create the interaction's own page is the registration form.
  router.get('/login', async function showSignIn(ctx) {
    const interaction = await toolkit.loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (interaction.prompt.name === 'consent') return consentStep.showConsent(ctx, interaction);
    if (interaction.prompt.name === 'login' && await after.stepUp(ctx, interaction)) return;
    return showSignInPage(ctx, interaction);
  });

  router.post('/abort', async function abortInteraction(ctx) {
    await toolkit.loadInteraction(ctx);
    await toolkit.finish(ctx, { error: 'access_denied', error_description: 'The person cancelled the sign-in' });
  });

  for (const step of [...firstFactors, registrationStep, ...secondFactorSteps, consentStep]) step.register(router);
  return router;
}
