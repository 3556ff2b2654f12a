/**
 * The sign-in steps after the password: prove a second factor (authenticator app code, recovery
 * code, emailed code or passkey), or set one up first when the app requires it and the person has
 * none; plus passwordless sign-in with a passkey from the login page.
 *
 * What the password proved waits in the store under the interaction's uid (PendingSignIns), so no
 * step trusts anything the browser sends about who is signing in. Pages work without JavaScript,
 * except passkeys, which need the browser's WebAuthn API (views/assets/passkeys.js).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults, Provider } from 'oidc-provider';

import type { AccountService } from '../domain/accounts.ts';
import type { SecurityEvents } from '../domain/events.ts';
import {
  multiFactorRequired,
  passwordlessPasskey,
  passwordOnly,
  SECOND_FACTOR_REASON,
  withSecondFactor,
  type Assurance,
  type PasskeyStorage,
  type SecondFactorMethod,
} from '../domain/mfa/assurance.ts';
import type { PendingSignIn, SecondFactorService } from '../domain/second-factors.ts';
import { AppError, isAppError } from '../errors.ts';
import { formField } from '../http/form.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';
import type { Account } from '../store/port.ts';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** Login-prompt reasons a second factor alone satisfies, when the session already has an account. */
const STEP_UP_REASONS = new Set([SECOND_FACTOR_REASON, 'essential_acr', 'essential_acrs']);

export interface SecondFactorStepsDependencies {
  provider: () => Provider;
  accounts: AccountService;
  secondFactors: SecondFactorService;
  logger: Logger;
  events: SecurityEvents;
  /** The interaction router's own helpers, so these steps load and finish interactions the same way. */
  loadInteraction(ctx: Context): Promise<Interaction>;
  finish(ctx: Context, result: InteractionResults): Promise<void>;
  clientOf(interaction: Interaction): Promise<{ name: string }>;
  showLogin(ctx: Context, interaction: Interaction, extra?: { email?: string; error?: string }): Promise<void>;
  /**
   * Counts one second-factor check (a code or passkey attempt, or an emailed code) for the account;
   * throws a 429 AppError once the account is over its limit.
   */
  limitSecondFactor(ctx: Context, sub: string): Promise<void>;
}

export interface SecondFactorSteps {
  /** After a correct password: finish, or continue to the second factor or to enrolment. */
  afterPassword(ctx: Context, interaction: Interaction, account: Account): Promise<void>;
  /** After any first factor (password, upstream provider): the same second-factor policy, with what the first factor proved. */
  afterFirstFactor(ctx: Context, interaction: Interaction, account: Account, assurance: Assurance): Promise<void>;
  /** On the login prompt: when only a second factor is missing from a live session, go straight to it. Returns true if it answered. */
  stepUp(ctx: Context, interaction: Interaction): Promise<boolean>;
  /** Adds the routes to the interaction router (after its body parser and CSRF middleware). */
  register(router: Router): void;
}

/** A sign-in is under way on the login prompt, or on prompt=create's page for someone who has an account already. */
function signingIn(interaction: Interaction): boolean {
  return interaction.prompt.name === 'login' || interaction.prompt.name === 'create';
}

const METHOD_ORDER: SecondFactorMethod[] = ['totp', 'passkey', 'email-code', 'recovery-code'];

const STAGE_PATHS: Record<PendingSignIn['stage'], string> = {
  'second-factor': '/second-factor',
  'enrol': '/enrol',
  'done': '/enrol/recovery-codes',
};

function maskEmail(email: string): string {
  const [local = '', domain = ''] = email.split('@');
  return `${local.slice(0, 1)}${'•'.repeat(Math.max(2, Math.min(local.length - 1, 6)))}@${domain}`;
}

export function secondFactorSteps(deps: SecondFactorStepsDependencies): SecondFactorSteps {
  const { provider, accounts, secondFactors, logger, events, loadInteraction, finish, clientOf, showLogin, limitSecondFactor } = deps;

  /** A second factor or passkey that did not prove who is signing in (`sub` when known). */
  function refused(interaction: Interaction, sub: string | undefined, factor: SecondFactorMethod, reason: string): void {
    events.emit({ type: 'signin.failed', ...(sub !== undefined && { sub }), clientId: String(interaction.params.client_id), details: { reason, factor } });
  }
  const pending = secondFactors.pendingSignIns;
  const base = (uid: string) => `/interaction/${uid}`;

  async function requiresMultiFactor(interaction: Interaction): Promise<boolean> {
    const client = await provider().Client.find(String(interaction.params.client_id));
    return multiFactorRequired(client?.metadata() as Record<string, unknown> | undefined, interaction.params);
  }

  function redirect(ctx: Context, location: string): void {
    ctx.status = ctx.method === 'POST' ? 303 : 302;
    ctx.redirect(location);
  }

  async function continueWith(ctx: Context, interaction: Interaction, account: Account, earlier: string[]): Promise<void> {
    const stage = secondFactors.hasSecondFactor(account) ? 'second-factor' : 'enrol';
    await pending.hold(interaction.uid, { sub: account.sub, amr: earlier, stage });
    redirect(ctx, `${base(interaction.uid)}${STAGE_PATHS[stage]}`);
  }

  async function afterFirstFactor(ctx: Context, interaction: Interaction, account: Account, assurance: Assurance): Promise<void> {
    if (secondFactors.hasSecondFactor(account) || await requiresMultiFactor(interaction)) {
      return continueWith(ctx, interaction, account, assurance.amr);
    }
    await finish(ctx, { login: { accountId: account.sub, ...assurance } });
  }

  function afterPassword(ctx: Context, interaction: Interaction, account: Account): Promise<void> {
    return afterFirstFactor(ctx, interaction, account, passwordOnly());
  }

  async function stepUp(ctx: Context, interaction: Interaction): Promise<boolean> {
    const { reasons } = interaction.prompt;
    const sub = interaction.session?.accountId;
    if (!sub || !reasons.includes(SECOND_FACTOR_REASON) || reasons.some((reason) => !STEP_UP_REASONS.has(reason))) return false;
    const account = await accounts.findBySub(sub);
    if (!account || account.disabled) return false;
    logger.info({ sub, clientId: interaction.params.client_id }, 'second factor required: stepping up the session');
    await continueWith(ctx, interaction, account, interaction.session?.amr ?? passwordOnly().amr);
    return true;
  }

  /** The interaction and its pending sign-in at the given stage, or a redirect back to the start. */
  async function loadPending(ctx: Context, stage: PendingSignIn['stage']): Promise<{ interaction: Interaction; signIn: PendingSignIn; account: Account } | undefined> {
    const interaction = await loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
    const signIn = await pending.find(interaction.uid);
    const account = signIn && await accounts.findBySub(signIn.sub);
    // The passkey script asks for JSON: a redirect to an HTML page would only confuse it.
    if ((!signIn || !account || account.disabled || signIn.stage !== stage) && ctx.accepts('html', 'json') === 'json') {
      throw new AppError('ERR_INTERACTION_EXPIRED', 'This step of the sign-in expired. Reload the page and start again.');
    }
    if (!signIn || !account || account.disabled) {
      if (signIn) await pending.discard(interaction.uid);
      redirect(ctx, base(interaction.uid));
      return undefined;
    }
    if (signIn.stage !== stage) {
      redirect(ctx, `${base(interaction.uid)}${STAGE_PATHS[signIn.stage]}`);
      return undefined;
    }
    return { interaction, signIn, account };
  }

  /** The sign-in is complete: the pending record is taken (once), and oidc-provider gets the login. */
  async function complete(ctx: Context, interaction: Interaction, assurance: Assurance, how: string): Promise<void> {
    const signIn = await pending.take(interaction.uid);
    if (!signIn) throw new AppError('ERR_INTERACTION_EXPIRED', 'This sign-in already finished or expired. Go back to the app and start again.');
    logger.info({ sub: signIn.sub, clientId: interaction.params.client_id, amr: assurance.amr }, `sign-in succeeded with ${how}`);
    await finish(ctx, { login: { accountId: signIn.sub, ...assurance } });
  }

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
      title: 'Confirm it is you',
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
    refused(interaction, signIn.sub, method, 'wrong_second_factor');
    ctx.status = 401;
    await showSecondFactor(ctx, interaction, account, { method, error: wrong, sent: method === 'email-code' });
  }

  // --- Enrolment ---

  async function showEnrolChoice(ctx: Context, interaction: Interaction, error?: string) {
    await renderPage(ctx, 'enrol', {
      title: 'Set up a second factor',
      uid: interaction.uid,
      client: await clientOf(interaction),
      emailCodes: secondFactors.emailCodesAvailable,
      error,
    });
  }

  async function showTotpEnrolment(ctx: Context, interaction: Interaction, account: Account, error?: string) {
    const enrolment = await secondFactors.startTotpEnrolment(account.sub);
    await renderPage(ctx, 'enrol-totp', {
      title: 'Set up an authenticator app',
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
      title: 'Get codes by email',
      uid: interaction.uid,
      client: await clientOf(interaction),
      email: account.email,
      sent: Boolean(extra.sent),
      error: extra.error,
    });
  }

  /**
   * A first factor is set up, and using it proved it: the sign-in is multi-factor. Someone without
   * recovery codes gets them now, shown once before the sign-in continues.
   */
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
    redirect(ctx, `${base(interaction.uid)}/enrol/recovery-codes`);
  }

  /** Refusals a person can fix (a wrong code, a cancelled passkey) re-render the page; anything else propagates. */
  function isRefusal(error: unknown): error is AppError {
    return isAppError(error, 'ERR_SECOND_FACTOR_INVALID') || isAppError(error, 'ERR_SECOND_FACTOR_UNAVAILABLE');
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
      if (!availableMethods(loaded.account).includes('email-code')) {
        ctx.status = 409;
        return showSecondFactor(ctx, loaded.interaction, loaded.account, { error: 'Codes by email are not available for this account.' });
      }
      await limitSecondFactor(ctx, loaded.signIn.sub);
      await secondFactors.sendEmailCode(loaded.signIn.sub);
      redirect(ctx, `${base(loaded.interaction.uid)}/second-factor?method=email-code&sent=1`);
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
        if (!isRefusal(error)) throw error;
        refused(interaction, signIn.sub, 'passkey', 'wrong_second_factor');
        ctx.status = error.status;
        await showSecondFactor(ctx, interaction, account, { method: 'passkey', error: error.message });
      }
    });

    // Passwordless: a discoverable passkey names its account (the user handle) and proves both factors.
    router.post('/passkey/options', async function passwordlessOptions(ctx) {
      const interaction = await loadInteraction(ctx);
      if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await secondFactors.passkeyAuthenticationOptions(undefined, { uid: interaction.uid });
    });

    router.post('/passkey', async function submitPasswordlessPasskey(ctx) {
      const interaction = await loadInteraction(ctx);
      if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
      try {
        const result = await secondFactors.verifyPasskeyAuthentication(formField(ctx, 'credential'), { uid: interaction.uid });
        const assurance = passwordlessPasskey(result.storage);
        logger.info({ sub: result.sub, clientId: interaction.params.client_id, amr: assurance.amr }, 'sign-in succeeded with a passkey');
        await pending.discard(interaction.uid);
        await finish(ctx, { login: { accountId: result.sub, ...assurance } });
      } catch (error) {
        if (!isRefusal(error)) throw error;
        logger.info({ clientId: interaction.params.client_id }, 'passkey sign-in refused');
        refused(interaction, undefined, 'passkey', 'passkey_refused');
        ctx.status = error.status;
        await showLogin(ctx, interaction, { error: error.message });
      }
    });

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
        if (!isRefusal(error)) throw error;
        ctx.status = error.status;
        return showTotpEnrolment(ctx, interaction, account, error.message);
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
        if (!isRefusal(error)) throw error;
        ctx.status = error.status;
        return showEnrolChoice(ctx, interaction, error.message);
      }
      await enrolled(ctx, interaction, signIn, account, 'passkey', storage);
    });

    router.get('/enrol/email', async function showEmailSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      if (!secondFactors.emailCodesAvailable) return redirect(ctx, `${base(loaded.interaction.uid)}/enrol`);
      await showEmailEnrolment(ctx, loaded.interaction, loaded.account, { sent: ctx.query.sent === '1' });
    });

    router.post('/enrol/email/send', async function sendEmailSetupCode(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      await limitSecondFactor(ctx, loaded.signIn.sub);
      try {
        await secondFactors.startEmailOtpEnrolment(loaded.signIn.sub);
      } catch (error) {
        if (!isRefusal(error)) throw error;
        ctx.status = error.status;
        return showEnrolChoice(ctx, loaded.interaction, error.message);
      }
      redirect(ctx, `${base(loaded.interaction.uid)}/enrol/email?sent=1`);
    });

    router.post('/enrol/email', async function confirmEmailSetup(ctx) {
      const loaded = await loadPending(ctx, 'enrol');
      if (!loaded) return;
      const { interaction, signIn, account } = loaded;
      await limitSecondFactor(ctx, signIn.sub);
      try {
        await secondFactors.confirmEmailOtp(signIn.sub, formField(ctx, 'code'));
      } catch (error) {
        if (!isRefusal(error)) throw error;
        ctx.status = error.status;
        return showEmailEnrolment(ctx, interaction, account, { sent: true, error: error.message });
      }
      await enrolled(ctx, interaction, signIn, account, 'email-code');
    });

    router.get('/enrol/recovery-codes', async function showNewRecoveryCodes(ctx) {
      const loaded = await loadPending(ctx, 'done');
      if (!loaded) return;
      const { interaction, signIn } = loaded;
      await renderPage(ctx, 'enrol-recovery-codes', {
        title: 'Save your recovery codes',
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

  return { afterPassword, afterFirstFactor, stepUp, register };
}
