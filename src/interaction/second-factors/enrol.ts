/**
 * The enrolment step: the app requires a second factor and the person has none, so they set one up
 * (authenticator app, passkey or codes by email) before the sign-in continues. Using the new factor
 * proves it, so the sign-in is multi-factor; someone without recovery codes gets them now, shown once.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import { withSecondFactor, type PasskeyStorage, type SecondFactorMethod } from '../../domain/mfa/assurance.ts';
import type { PendingSignIn, SecondFactorService } from '../../domain/second-factors.ts';
import { AppError } from '../../errors.ts';
import { formField } from '../../http/form.ts';
import { pageLocale } from '../../http/locale.ts';
import { renderPage } from '../../http/render.ts';
import type { Logger } from '../../log.ts';
import type { Account } from '../../store/port.ts';
import { isFactorRefusal, type Interaction, type InteractionToolkit, type SignInStep } from '../toolkit.ts';
import type { PendingSteps } from './pending-step.ts';

export interface EnrolSecondFactorDependencies {
  toolkit: InteractionToolkit;
  steps: PendingSteps;
  secondFactors: SecondFactorService;
  logger: Logger;
  /** As for proving one: setting up a factor counts towards the account's second-factor limit. */
  limitSecondFactor(ctx: Context, sub: string): Promise<void>;
}

export function enrolSecondFactor({ toolkit, steps, secondFactors, logger, limitSecondFactor }: EnrolSecondFactorDependencies): SignInStep {
  const { clientOf, redirect, path, refuse } = toolkit;
  const { loadPending, complete } = steps;
  const pending = secondFactors.pendingSignIns;

  async function showEnrolChoice(ctx: Context, interaction: Interaction, error?: string) {
    await renderPage(ctx, 'enrol', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      emailCodes: secondFactors.emailCodesAvailable,
      error,
    });
  }

  async function showTotpEnrolment(ctx: Context, interaction: Interaction, account: Account, error?: string) {
    const enrolment = await secondFactors.startTotpEnrolment(account.sub);
    await renderPage(ctx, 'enrol-totp', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      qrDataUrl: enrolment.qrDataUrl,
      secret: enrolment.formattedSecret,
      otpauthUri: enrolment.otpauthUri,
      error,
    });
  }

  async function showEmailEnrolment(ctx: Context, interaction: Interaction, account: Account, extra: { sent?: boolean; error?: string } = {}) {
    await renderPage(ctx, 'enrol-email', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      email: account.email,
      sent: Boolean(extra.sent),
      error: extra.error,
    });
  }

  /** A second factor is set up, and using it proved it; new recovery codes first when there are none. */
  async function enrolled(ctx: Context, interaction: Interaction, signIn: PendingSignIn, account: Account, method: SecondFactorMethod, storage?: PasskeyStorage) {
    const assurance = withSecondFactor(signIn.amr, method, storage);
    logger.info({ sub: account.sub, method }, 'second factor set up');
    if (account.recoveryCodes.length) return complete(ctx, interaction, assurance, `a new ${method}`);
    const codes = await secondFactors.generateRecoveryCodes(account.sub);
    await pending.hold(interaction.uid, {
      ...signIn,
      stage: 'done',
      assurance,
      sealedRecoveryCodes: pending.sealRecoveryCodes(interaction.uid, codes),
    });
    redirect(ctx, path(interaction.uid, '/enrol/recovery-codes'));
  }

  function register(router: Router): void {
    router.get('/enrol', async function showEnrolment(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      await showEnrolChoice(ctx, loaded.interaction);
    });

    router.get('/enrol/totp', async function showTotpSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      await showTotpEnrolment(ctx, loaded.interaction, loaded.account);
    });

    router.post('/enrol/totp', async function confirmTotpSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      await limitSecondFactor(ctx, signIn.sub);
      try {
        await secondFactors.confirmTotp(signIn.sub, formField(ctx, 'code'));
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        return refuse(ctx, error.status, (message) => showTotpEnrolment(ctx, interaction, account, message), error.message);
      }
      await enrolled(ctx, interaction, signIn, account, 'totp');
    });

    router.post('/enrol/passkey/options', async function passkeySetupOptions(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      ctx.body = await secondFactors.passkeyRegistrationOptions(loaded.signIn.sub, { uid: loaded.interaction.uid });
    });

    router.post('/enrol/passkey', async function confirmPasskeySetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      let storage: PasskeyStorage;
      try {
        ({ storage } = await secondFactors.verifyPasskeyRegistration(signIn.sub, formField(ctx, 'credential'), formField(ctx, 'name'), { uid: interaction.uid }));
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        return refuse(ctx, error.status, (message) => showEnrolChoice(ctx, interaction, message), error.message);
      }
      await enrolled(ctx, interaction, signIn, account, 'passkey', storage);
    });

    router.get('/enrol/email', async function showEmailSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      if (!secondFactors.emailCodesAvailable) return redirect(ctx, path(loaded.interaction.uid, '/enrol'));
      await showEmailEnrolment(ctx, loaded.interaction, loaded.account, { sent: ctx.query.sent === '1' });
    });

    router.post('/enrol/email/send', async function sendEmailSetupCode(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      const { interaction, signIn } = loaded;
      await limitSecondFactor(ctx, signIn.sub);
      try {
        await secondFactors.startEmailOtpEnrolment(signIn.sub, pageLocale(ctx));
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        return refuse(ctx, error.status, (message) => showEnrolChoice(ctx, interaction, message), error.message);
      }
      redirect(ctx, path(interaction.uid, '/enrol/email?sent=1'));
    });

    router.post('/enrol/email', async function confirmEmailSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      await limitSecondFactor(ctx, signIn.sub);
      try {
        await secondFactors.confirmEmailOtp(signIn.sub, formField(ctx, 'code'));
      } catch (error) {
        if (!isFactorRefusal(error)) throw error;
        return refuse(ctx, error.status, (extra) => showEmailEnrolment(ctx, interaction, account, extra), { sent: true, error: error.message });
      }
      await enrolled(ctx, interaction, signIn, account, 'email-code');
    });

    router.get('/enrol/recovery-codes', async function showNewRecoveryCodes(ctx) {
      const loaded = await loadPending(ctx, 'done');
      if (!loaded) return;
      const { interaction, signIn } = loaded;
      await renderPage(ctx, 'enrol-recovery-codes', {
        uid: interaction.uid,
        client: await clientOf(interaction),
        codes: signIn.sealedRecoveryCodes ? pending.openRecoveryCodes(interaction.uid, signIn.sealedRecoveryCodes) : [],
      });
    });

    router.post('/enrol/done', async function finishEnrolment(ctx) {
      const loaded = await loadPending(ctx, 'done');
      if (!loaded) return;
      const { interaction, signIn } = loaded;
      if (!signIn.assurance) throw new AppError('ERR_INTERACTION_EXPIRED', 'This sign-in expired. Go back to the app and start again.');
      await complete(ctx, interaction, signIn.assurance, 'a new second factor');
    });
  }

  return { register };
}
