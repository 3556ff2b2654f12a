/**
 * First factor: a passkey alone, from the sign-in page. A discoverable passkey names its account
 * (the user handle) and, with user verification, proves both factors (passwordlessPasskey).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import { passwordlessPasskey } from '../../domain/mfa/assurance.ts';
import type { SecondFactorService } from '../../domain/second-factors.ts';
import { AppError } from '../../errors.ts';
import { formField } from '../../http/form.ts';
import type { Logger } from '../../log.ts';
import type { AfterFirstFactor } from '../after-first-factor.ts';
import { isFactorRefusal, signingIn, type InteractionToolkit, type SignInStep } from '../toolkit.ts';
import type { ShowSignInPage } from './sign-in-page.ts';

export interface PasskeySignInDependencies {
  toolkit: InteractionToolkit;
  after: AfterFirstFactor;
  showSignInPage: ShowSignInPage;
  /** Counts one passwordless passkey sign-in per address (the sign-in limit); throws a 429 AppError over it. */
  limitPasswordless(ctx: Context): Promise<void>;
  secondFactors: SecondFactorService;
  logger: Logger;
}

export function passkeySignIn({ toolkit, after, showSignInPage, secondFactors, logger, limitPasswordless }: PasskeySignInDependencies): SignInStep {
  const { loadInteraction, refuse, signInRefused } = toolkit;

  function register(router: Router): void {
    router.post('/passkey/options', async function passwordlessOptions(ctx) {
      const interaction = await loadInteraction(ctx);
      if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      ctx.set('Cache-Control', 'no-store');
      await limitPasswordless(ctx);
      ctx.body = await secondFactors.passkeyAuthenticationOptions(undefined, { uid: interaction.uid });
    });

    router.post('/passkey', async function submitPasswordlessPasskey(ctx) {
      const interaction = await loadInteraction(ctx);
      if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      try {
        const result = await secondFactors.verifyPasskeyAuthentication(formField(ctx, 'credential'), { uid: interaction.uid });
        const assurance = passwordlessPasskey(result.storage);
        logger.info({ sub: result.sub, clientId: interaction.params.client_id, amr: assurance.amr }, 'sign-in succeeded with a passkey');
        await after.afterFirstFactor(ctx, interaction, result.account, assurance);
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        logger.info({ clientId: interaction.params.client_id }, 'passkey sign-in refused');
        signInRefused(interaction, undefined, 'passkey', 'passkey_refused');
        await refuse(ctx, error.status, (values) => showSignInPage(ctx, interaction, values), { error: error.message });
      }
    });
  }

  return { register };
}
