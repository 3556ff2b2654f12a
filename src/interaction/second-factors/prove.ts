/**
 * The second-factor step: prove one (authenticator app code, recovery code, emailed code or passkey)
 * after a first factor that proved one alone. Pages work without JavaScript, except passkeys, which
 * need the browser's WebAuthn API (views/assets/passkeys.js).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import { withSecondFactor, type SecondFactorMethod } from '../../domain/mfa/assurance.ts';
import type { SecondFactorService } from '../../domain/second-factors.ts';
import { formField } from '../../http/form.ts';
import { pageLocale } from '../../http/locale.ts';
import { renderPage } from '../../http/render.ts';
import type { Logger } from '../../log.ts';
import type { Account } from '../../store/port.ts';
import { isFactorRefusal, type Interaction, type InteractionToolkit, type SignInStep } from '../toolkit.ts';
import type { PendingSteps } from './pending-step.ts';

// A passkey first when the account has one: one touch, and nothing to phish; the page lists the others.
const METHOD_ORDER: SecondFactorMethod[] = ['passkey', 'totp', 'email-code', 'recovery-code'];

function maskEmail(email: string): string {
  const [local = '', domain = ''] = email.split('@');
  return `${local.slice(0, 1)}${'•'.repeat(Math.max(2, Math.min(local.length - 1, 6)))}@${domain}`;
}

export interface ProveSecondFactorDependencies {
  toolkit: InteractionToolkit;
  steps: PendingSteps;
  secondFactors: SecondFactorService;
  logger: Logger;
  /**
   * Counts one second-factor check (a code or passkey attempt, or an emailed code) for the account;
   * throws a 429 AppError once the account is over its limit.
   */
  limitSecondFactor(ctx: Context, sub: string): Promise<void>;
}

export function proveSecondFactor({ toolkit, steps, secondFactors, logger, limitSecondFactor }: ProveSecondFactorDependencies): SignInStep {
  const { clientOf, redirect, path, refuse, signInRefused } = toolkit;
  const { loadPending, complete } = steps;

  function availableMethods(account: Account): SecondFactorMethod[] {
    const has: Record<SecondFactorMethod, boolean> = {
      'totp': Boolean(account.totp?.confirmedAt),
      'passkey': account.passkeys.length > 0,
      'email-code': account.emailOtp && secondFactors.emailCodesAvailable,
      'recovery-code': account.recoveryCodes.length > 0,
    };
    return METHOD_ORDER.filter((method) => has[method]);
  }

  async function showSecondFactor(ctx: Context, interaction: Interaction, account: Account, extra: { method?: string; error?: string; sent?: boolean } = {}) {
    const methods = availableMethods(account);
    const method = methods.find((candidate) => candidate === extra.method) ?? methods[0];
    await renderPage(ctx, 'second-factor', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      method,
      methods,
      maskedEmail: maskEmail(account.email),
      // A step-up keeps the session's account: "someone else" would mean signing out first.
      switchAccount: !interaction.session?.accountId,
      sent: Boolean(extra.sent),
      error: extra.error,
    });
  }

  async function checkCode(ctx: Context, method: 'totp' | 'recovery-code' | 'email-code', check: (sub: string, code: string) => Promise<boolean>, wrong: string) {
    const loaded = await loadPending(ctx, 'second-factor');
    if (!loaded) return;
    const { interaction, signIn, account } = loaded;
    await limitSecondFactor(ctx, signIn.sub);
    if (await check(signIn.sub, formField(ctx, 'code'))) {
      if (method === 'recovery-code') logger.warn({ sub: signIn.sub }, 'a recovery code was used to sign in');
      return complete(ctx, interaction, withSecondFactor(signIn.amr, method), method);
    }
    logger.info({ sub: signIn.sub, method }, 'second factor refused');
    signInRefused(interaction, signIn.sub, method, 'wrong_second_factor');
    await refuse(ctx, 401, (extra) => showSecondFactor(ctx, interaction, account, extra), { method, error: wrong, sent: method === 'email-code' });
  }

  function register(router: Router): void {
    router.get('/second-factor', async function showSecondFactorStep(ctx) {
      const loaded = await loadPending(ctx, 'second-factor');
      if (!loaded) return;
      await showSecondFactor(ctx, loaded.interaction, loaded.account, { method: String(ctx.query.method ?? ''), sent: ctx.query.sent === '1' });
    });

    router.post('/second-factor/totp', async function submitTotpCode(ctx) {
      await checkCode(ctx, 'totp', (sub, code) => secondFactors.verifyTotp(sub, code), 'That code is not right, or it was already used. Enter the current code from your authenticator app.');
    });

    router.post('/second-factor/recovery-code', async function submitRecoveryCode(ctx) {
      await checkCode(ctx, 'recovery-code', (sub, code) => secondFactors.useRecoveryCode(sub, code), 'That recovery code is not right, or it was already used.');
    });

    router.post('/second-factor/email-code', async function submitEmailCode(ctx) {
      await checkCode(ctx, 'email-code', (sub, code) => secondFactors.verifyEmailCode(sub, code), 'That code is not right, or it expired. Ask for a new one if you need to.');
    });

    router.post('/second-factor/email-code/send', async function sendEmailCode(ctx) {
      const loaded = await loadPending(ctx, 'second-factor');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      if (!availableMethods(account).includes('email-code')) {
        return refuse(ctx, 409, (extra) => showSecondFactor(ctx, interaction, account, extra), { error: 'Codes by email are not available for this account.' });
      }
      await limitSecondFactor(ctx, signIn.sub);
      await secondFactors.sendEmailCode(signIn.sub, pageLocale(ctx));
      redirect(ctx, path(interaction.uid, '/second-factor?method=email-code&sent=1'));
    });

    router.post('/second-factor/passkey/options', async function secondFactorPasskeyOptions(ctx) {
      const loaded = await loadPending(ctx, 'second-factor');
      if (!loaded) return;
      await limitSecondFactor(ctx, loaded.signIn.sub);
      ctx.body = await secondFactors.passkeyAuthenticationOptions(loaded.signIn.sub, { uid: loaded.interaction.uid });
    });

    router.post('/second-factor/passkey', async function submitSecondFactorPasskey(ctx) {
      const loaded = await loadPending(ctx, 'second-factor');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      try {
        const result = await secondFactors.verifyPasskeyAuthentication(formField(ctx, 'credential'), { sub: signIn.sub, uid: interaction.uid });
        return await complete(ctx, interaction, withSecondFactor(signIn.amr, 'passkey', result.storage), 'a passkey');
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        signInRefused(interaction, signIn.sub, 'passkey', 'wrong_second_factor');
        await refuse(ctx, error.status, (extra) => showSecondFactor(ctx, interaction, account, extra), { method: 'passkey', error: error.message });
      }
    });
  }

  return { register };
}
