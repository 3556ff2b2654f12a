/**
 * Creating an account (the `create` prompt, or "Create an account" from the sign-in page): the
 * form, and POST /register, which signs the new person in with the password they chose.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import type { AccountService } from '../domain/accounts.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import { passwordOnly } from '../domain/mfa/assurance.ts';
import { AppError, isAppError } from '../errors.ts';
import { formField } from '../http/form.ts';
import { pageLocale } from '../http/locale.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';
import type { Interaction, InteractionToolkit, SignInStep } from './toolkit.ts';

export interface RegistrationValues {
  values?: Record<string, string>;
  error?: string;
}

export interface RegistrationStep extends SignInStep {
  showRegister(ctx: Context, interaction: Interaction, extra?: RegistrationValues): Promise<void>;
}

export interface RegistrationDependencies {
  toolkit: InteractionToolkit;
  accounts: AccountService;
  emailVerification: EmailVerification;
  logger: Logger;
  /** Counts one attempt for this client address; throws a 429 AppError over the limit. */
  limitRegistration(ctx: Context): Promise<void>;
  /** The consent page, for a registration page opened after the account exists. */
  showConsent(ctx: Context, interaction: Interaction): Promise<void>;
}

export function registration({ toolkit, accounts, emailVerification, logger, limitRegistration, showConsent }: RegistrationDependencies): RegistrationStep {
  const { loadInteraction, clientOf, finish, refuse } = toolkit;

  async function showRegister(ctx: Context, interaction: Interaction, extra: RegistrationValues = {}) {
    await renderPage(ctx, 'register', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      values: extra.values ?? {},
      error: extra.error,
      passwordMinLength: accounts.passwordPolicy.minLength,
      passwordMaxLength: accounts.passwordPolicy.maxLength,
      passwordHint: accounts.passwordPolicy.hint,
    });
  }

  function register(router: Router): void {
    router.get('/register', async function showRegistration(ctx) {
      const interaction = await loadInteraction(ctx);
      ctx.set('Cache-Control', 'no-store');
      if (interaction.prompt.name === 'consent') return showConsent(ctx, interaction);
      return showRegister(ctx, interaction);
    });

    router.post('/register', async function submitRegistration(ctx) {
      const interaction = await loadInteraction(ctx);
      if (interaction.prompt.name === 'consent') throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      // Every attempt counts: the "already exists" answer must not become a fast way to list accounts.
      await limitRegistration(ctx);
      const values = {
        email: formField(ctx, 'email'),
        name: formField(ctx, 'name'),
        givenName: formField(ctx, 'given_name'),
        familyName: formField(ctx, 'family_name'),
      };
      const again = (extra: RegistrationValues) => showRegister(ctx, interaction, extra);
      const password = formField(ctx, 'password');
      if (password !== formField(ctx, 'password_confirmation')) {
        return refuse(ctx, 400, again, { values, error: 'The two passwords do not match' });
      }
      try {
        const account = await accounts.register({ ...values, password });
        logger.info({ sub: account.sub, clientId: interaction.params.client_id }, 'account registered');
        emailVerification.send(account, pageLocale(ctx)).catch((error: unknown) => logger.error({ err: error, sub: account.sub }, 'could not send the verification email'));
        // Under prompt=create, finish also records `create` as resolved (toolkit.ts, recorded()).
        await finish(ctx, { login: { accountId: account.sub, ...passwordOnly() } });
      } catch (error) {
        if (isAppError(error, 'ERR_INVALID_INPUT')) return refuse(ctx, 400, again, { values, error: error.message });
        if (isAppError(error, 'ERR_EMAIL_TAKEN')) {
          return refuse(ctx, 409, again, { values, error: 'An account with this email already exists. Sign in instead.' });
        }
        throw error;
      }
    });
  }

  return { register, showRegister };
}
