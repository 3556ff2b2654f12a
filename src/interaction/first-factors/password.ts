/**
 * First factor: email and password (the sign-in page's form, POST /login). A wrong password, an
 * unknown email, a disabled, locked or password-less account all get the same refusal (accounts.ts).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import { INVALID_CREDENTIALS, type AccountService } from '../../domain/accounts.ts';
import { passwordOnly } from '../../domain/mfa/assurance.ts';
import { AppError, isAppError } from '../../errors.ts';
import { formField } from '../../http/form.ts';
import type { Logger } from '../../log.ts';
import type { AfterFirstFactor } from '../after-first-factor.ts';
import type { InteractionToolkit, SignInStep } from '../toolkit.ts';
import type { ShowSignInPage } from './sign-in-page.ts';

export interface PasswordSignInDependencies {
  toolkit: InteractionToolkit;
  after: AfterFirstFactor;
  showSignInPage: ShowSignInPage;
  accounts: AccountService;
  logger: Logger;
  /** Counts one attempt for this client address and email; throws a 429 AppError over the limit. */
  limitSignIn(ctx: Context, email: string): Promise<void>;
}

export function passwordSignIn({ toolkit, after, showSignInPage, accounts, logger, limitSignIn }: PasswordSignInDependencies): SignInStep {
  const { loadInteraction, refuse } = toolkit;

  function register(router: Router): void {
    router.post('/login', async function submitLogin(ctx) {
      const interaction = await loadInteraction(ctx);
      if (interaction.prompt.name === 'consent') throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      const email = formField(ctx, 'email');
      await limitSignIn(ctx, email);
      try {
        const account = await accounts.authenticate(email, formField(ctx, 'password'), { clientId: String(interaction.params.client_id) });
        logger.info({ sub: account.sub, clientId: interaction.params.client_id }, 'sign-in succeeded');
        await after.afterFirstFactor(ctx, interaction, account, passwordOnly());
      } catch (error) {
        if (!isAppError(error, 'ERR_INVALID_CREDENTIALS')) throw error;
        logger.info({ clientId: interaction.params.client_id }, 'sign-in failed');
        await refuse(ctx, 401, (values) => showSignInPage(ctx, interaction, values), { email, error: INVALID_CREDENTIALS });
      }
    });
  }

  return { register };
}
