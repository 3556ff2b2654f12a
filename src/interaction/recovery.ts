/**
 * Pages reached from emails and from the sign-in page: "forgot your password", the reset link, and
 * the email verification link. Server-rendered like the interaction pages: every POST carries a
 * CSRF token and answers 303 on success; refused input is shown again with a 4xx and a plain reason.
 *
 * A link from an email never does anything on GET (mail scanners fetch links): it shows a page whose
 * button makes the POST that uses the link up.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';

import { describeDuration } from '../domain/account-mail.ts';
import { type AccountService } from '../domain/accounts.ts';
import { normaliseEmail } from '../domain/email.ts';
import { VERIFY_EMAIL_PATH, type EmailVerification } from '../domain/email-verification.ts';
import type { SecurityEvents } from '../domain/events.ts';
import { FORGOT_PASSWORD_PATH, interactionUid, RESET_PASSWORD_PATH, type PasswordReset } from '../domain/password-reset.ts';
import type { SecondFactorService } from '../domain/second-factors.ts';
import { csrfProtection } from '../http/csrf.ts';
import { formField } from '../http/form.ts';
import { pageLocale } from '../http/locale.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';

export interface RecoveryRouterDependencies {
  accounts: AccountService;
  emailVerification: EmailVerification;
  passwordReset: PasswordReset;
  rateLimits: RateLimits;
  logger: Logger;
  events: SecurityEvents;
  /** A reset offers to remove the second factors and passkeys added in the last days. */
  secondFactors: SecondFactorService;
}

function queryField(ctx: Context, name: string): string {
  const value = ctx.query[name];
  return typeof value === 'string' ? value : '';
}

/** Every value of a repeated form field (checkboxes), strings only. */
function formValues(ctx: Context, name: string): string[] {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  const values = Array.isArray(value) ? value : [value];
  return values.filter((entry): entry is string => typeof entry === 'string');
}

function looksLikeEmail(value: string): boolean {
  return normaliseEmail(value).ok;
}

export function recoveryRouter({ accounts, emailVerification, passwordReset, rateLimits, logger, events, secondFactors }: RecoveryRouterDependencies): Router {
  const router = new Router();
  const policy = accounts.passwordPolicy;

  async function showForgot(ctx: Context, values: { uid?: string | undefined; email?: string; error?: string; sent?: boolean }) {
    ctx.set('Cache-Control', 'no-store');
    await renderPage(ctx, 'forgot-password', {
      uid: values.uid,
      email: values.email ?? '',
      error: values.error,
      sent: values.sent ?? false,
      ttl: describeDuration(passwordReset.ttlSeconds, pageLocale(ctx)),
    });
  }

  /**
   * The reset form. Factors added in the last days are listed with a checkbox each, ticked at first:
   * the person resetting proved the mailbox, and one they do not recognise was likely added by
   * whoever had the password. After a refused password the ticks stay as they were sent.
   */
  async function showResetForm(ctx: Context, values: { token: string; uid?: string | undefined; email: string; sub: string; error?: string; ticked?: string[] }) {
    ctx.set('Cache-Control', 'no-store');
    const recentFactors = (await secondFactors.recentFactors(values.sub)).map((factor) => ({
      ...factor,
      checked: values.ticked ? values.ticked.includes(factor.id) : true,
    }));
    await renderPage(ctx, 'reset-password', {
      done: false,
      token: values.token,
      uid: values.uid,
      email: values.email,
      error: values.error,
      recentFactors,
      passwordMinLength: policy.minLength,
      passwordMaxLength: policy.maxLength,
      passwordHint: policy.hint,
    });
  }

  async function showLinkExpired(ctx: Context, kind: 'reset' | 'verification', uid?: string) {
    ctx.status = 400;
    ctx.set('Cache-Control', 'no-store');
    await renderPage(ctx, 'link-expired', kind === 'reset'
      ? { kind, retryHref: `${FORGOT_PASSWORD_PATH}${uid ? `?uid=${uid}` : ''}` }
      : { kind, retryHref: '/' });
  }

  router.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' }));

  router.get(FORGOT_PASSWORD_PATH, csrfProtection, async function showForgotPassword(ctx) {
    await showForgot(ctx, { uid: interactionUid(ctx.query.uid) });
  });

  router.post(FORGOT_PASSWORD_PATH, csrfProtection, async function requestPasswordReset(ctx) {
    const uid = interactionUid(formField(ctx, 'uid'));
    const email = formField(ctx, 'email');
    if (!looksLikeEmail(email)) {
      ctx.status = 400;
      return showForgot(ctx, { uid, email, error: 'Enter the email address of your account' });
    }
    await rateLimits.passwordReset(ctx, email);
    // In the background, so the answer comes as fast for an unknown address as for a known one.
    void passwordReset.request(email, { uid, locale: pageLocale(ctx) }).then(
      (account) => account && logger.info({ sub: account.sub }, 'password reset link sent'),
      (error: unknown) => logger.error({ err: error }, 'could not send a password reset link'),
    );
    ctx.status = 303;
    ctx.redirect(`${FORGOT_PASSWORD_PATH}/sent${uid ? `?uid=${uid}` : ''}`);
  });

  router.get(`${FORGOT_PASSWORD_PATH}/sent`, csrfProtection, async function showResetRequested(ctx) {
    await showForgot(ctx, { uid: interactionUid(ctx.query.uid), sent: true });
  });

  router.get(RESET_PASSWORD_PATH, csrfProtection, async function showResetPassword(ctx) {
    const token = queryField(ctx, 'token');
    const uid = interactionUid(ctx.query.uid);
    const account = await passwordReset.peek(token);
    if (!account) return showLinkExpired(ctx, 'reset', uid);
    await showResetForm(ctx, { token, uid, email: account.email, sub: account.sub });
  });

  router.post(RESET_PASSWORD_PATH, csrfProtection, async function resetPassword(ctx) {
    const token = formField(ctx, 'token');
    const uid = interactionUid(formField(ctx, 'uid'));
    const password = formField(ctx, 'password');
    const account = await passwordReset.peek(token);
    if (!account) return showLinkExpired(ctx, 'reset', uid);
    const ticked = formValues(ctx, 'remove_factor');
    if (password !== formField(ctx, 'password_confirmation')) {
      ctx.status = 400;
      return showResetForm(ctx, { token, uid, email: account.email, sub: account.sub, ticked, error: 'The two passwords do not match' });
    }
    const outcome = await passwordReset.complete(token, password);
    if (!outcome.ok) {
      if (outcome.reason === 'invalid_link') return showLinkExpired(ctx, 'reset', uid);
      ctx.status = 400;
      return showResetForm(ctx, { token, uid, email: account.email, sub: account.sub, ticked, error: outcome.problem.message });
    }
    // After the new password is set: a link that failed removes nothing.
    const factorsRemoved = ticked.length ? await secondFactors.removeRecentFactors(outcome.account.sub, ticked) : 0;
    logger.info({ sub: outcome.account.sub, sessionsEnded: outcome.sessionsEnded, factorsRemoved }, 'password reset');
    if (outcome.sessionsEnded) events.emit({ type: 'session.ended', sub: outcome.account.sub, details: { count: outcome.sessionsEnded, reason: 'password_reset' } });
    ctx.status = 303;
    const done = new URLSearchParams({ ...(uid && { uid }), ...(factorsRemoved && { removed: String(factorsRemoved) }) }).toString();
    ctx.redirect(`${RESET_PASSWORD_PATH}/done${done ? `?${done}` : ''}`);
  });

  router.get(`${RESET_PASSWORD_PATH}/done`, async function showPasswordChanged(ctx) {
    ctx.set('Cache-Control', 'no-store');
    const removed = typeof ctx.query.removed === 'string' && /^[1-9]\d{0,2}$/.test(ctx.query.removed) ? Number(ctx.query.removed) : 0;
    await renderPage(ctx, 'reset-password', { done: true, uid: interactionUid(ctx.query.uid), removed });
  });

  router.get(VERIFY_EMAIL_PATH, csrfProtection, async function showVerifyEmail(ctx) {
    const token = queryField(ctx, 'token');
    if (!(await emailVerification.isLive(token))) return showLinkExpired(ctx, 'verification');
    ctx.set('Cache-Control', 'no-store');
    await renderPage(ctx, 'verify-email', { verified: false, token });
  });

  router.post(VERIFY_EMAIL_PATH, csrfProtection, async function verifyEmail(ctx) {
    const result = await emailVerification.verify(formField(ctx, 'token'));
    if (!result.verified) return showLinkExpired(ctx, 'verification');
    logger.info({ sub: result.account.sub }, 'email verified');
    events.emit({ type: 'email.verified', sub: result.account.sub });
    ctx.status = 303;
    ctx.redirect(`${VERIFY_EMAIL_PATH}/done`);
  });

  router.get(`${VERIFY_EMAIL_PATH}/done`, async function showEmailVerified(ctx) {
    await renderPage(ctx, 'verify-email', { verified: true });
  });

  return router;
}
