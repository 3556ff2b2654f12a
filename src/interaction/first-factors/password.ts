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
      const password = formField(ctx, 'password');
      // An empty field is not a wrong credential: say what is missing, beside it, and count nothing.
      if (!email.trim() || !password) {
        const fieldErrors = { ...(!email.trim() && { email: 'login.enterEmail' }), ...(!password && { password: 'login.enterPassword' }) };
        return refuse(ctx, 400, (values) => showSignInPage(ctx, interaction, values), { email, fieldErrors });
      }
      try {
        await limitSignIn(ctx, email);
      } catch (error) {
        // Over the limit the form stays, with the email, and says when to try again (Retry-After too).
        // JSON callers get the error middleware's JSON 429, as from every other limit.
        if (!isAppError(error, 'ERR_RATE_LIMITED') || ctx.accepts('html', 'json') !== 'html') throw error;
        if (error.retryAfterSeconds) ctx.set('Retry-After', String(error.retryAfterSeconds));
        return refuse(ctx, 429, (values) => showSignInPage(ctx, interaction, values), { email, error: error.message, rateLimited: true });
      }
      try {
        const account = await accounts.authenticate(email, password, { clientId: String(interaction.params.client_id) });
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
