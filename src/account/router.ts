/**
 * The account page, `/account`: a person's own profile, password, second factors and passkeys,
 * the places they are signed in and the apps they let in. Server-rendered like the sign-in pages:
 * every POST carries the CSRF token and answers 303 on success; a refused form shows the page again
 * with a 4xx status and a plain explanation next to the form it came from.
 *
 * Sign-in is Tessera's own OpenID Connect flow (sign-in.ts). Changing second factors needs a recent
 * sign-in (RECENT_SIGN_IN_SECONDS) with the strongest factor the account has (mayChangeFactors); any
 * other sends the person to sign in again first.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Provider } from 'oidc-provider';

import type { Config } from '../config.ts';
import type { AccountService } from '../domain/accounts.ts';
import type { SessionLogout } from '../domain/backchannel-logout.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import type { SecurityEvents } from '../domain/events.ts';
import type { IdentityService } from '../domain/identities.ts';
import { revokeAppTokens } from '../domain/password-reset.ts';
import { describeScopes } from '../domain/scopes.ts';
import type { SecondFactorService } from '../domain/second-factors.ts';
import type { UpstreamService } from '../domain/upstreams.ts';
import { AppError, isAppError } from '../errors.ts';
import { csrfProtection } from '../http/csrf.ts';
import { formField } from '../http/form.ts';
import { pageLocale, pageTranslator } from '../http/locale.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import { renderPage } from '../http/render.ts';
import { localizeMessage } from '../i18n/messages.ts';
import type { UpstreamSignIn } from '../interaction/first-factors/upstream.ts';
import type { Logger } from '../log.ts';
import type { Account, OidcStore } from '../store/port.ts';
import { accountSessions, destroySession, endOtherSessions, findAccountSession, listConnectedApps, listSessions, revokeApp, sessionHandle } from '../oidc/sessions-and-grants.ts';
import { ACCOUNT_CALLBACK_PATH } from '../oidc/account-client.ts';
import { OneTimeNotices } from './notices.ts';
import { AccountSignIn, mayChangeFactors, safeReturnPath, signedInRecently, type AccountSession } from './sign-in.ts';

export interface AccountRouterDependencies {
  config: Config;
  provider: () => Provider;
  accounts: AccountService;
  secondFactors: SecondFactorService;
  oidc: OidcStore;
  masterSecret: string;
  logger: Logger;
  events: SecurityEvents;
  /** The current-password check counts against the sign-in limits, like the sign-in page. */
  rateLimits: RateLimits;
  /** Upstream providers, the identities linked through them, and the round trip that links another. */
  upstreams: UpstreamService;
  identities: IdentityService;
  upstreamLinks: Pick<UpstreamSignIn, 'startLink' | 'takeLinkResult'>;
  /** The apps of the sessions ended here get logout tokens (OIDC Back-Channel Logout). */
  logout: SessionLogout;
  /** "Send the confirmation email again" for an address not yet confirmed. */
  emailVerification: Pick<EmailVerification, 'send'>;
}

interface SignedIn {
  session: AccountSession;
  /** The Tessera session (oidc-provider) this account-page session belongs to. */
  sessionId: string;
  account: Account;
}

type Section = 'profile' | 'password' | 'security' | 'identities' | 'sessions' | 'apps';

/**
 * What a 303 back to the page says: one of these catalog keys (`account.done.*`), so nothing from the
 * request is reflected.
 */
const DONE = new Set(['profile', 'password', 'password-set', 'sessions-ended', 'session-ended', 'revoked', 'totp-on', 'totp-off', 'passkey-on', 'passkey-off', 'email-codes-on', 'email-codes-off', 'identity-on', 'identity-off', 'verification-sent']);

function signedIn(ctx: Context): SignedIn {
  return ctx.state.signedIn as SignedIn;
}

function seeOther(ctx: Context, location: string): void {
  ctx.status = 303;
  ctx.redirect(location);
}

export function accountRouter({ config, provider, accounts, secondFactors, oidc, masterSecret, logger, events, rateLimits, upstreams, identities, upstreamLinks, logout, emailVerification }: AccountRouterDependencies): Router {
  const router = new Router({ prefix: '/account' });
  const signIn = new AccountSignIn(config.issuer, provider);
  const notices = new OneTimeNotices(oidc, masterSecret);

  /** Client names for one page view, each looked up once. */
  function clientNames() {
    const names = new Map<string, Promise<string>>();
    return (clientId: string) => {
      let name = names.get(clientId);
      if (!name) {
        name = provider().Client.find(clientId).then((client) => client?.clientName ?? clientId, () => clientId);
        names.set(clientId, name);
      }
      return name;
    };
  }

  /**
   * Lets a request through only with a live account-page session: its cookie intact, the Tessera
   * session behind it still there, the account still enabled. Otherwise a GET goes to sign in (and
   * comes back), a POST goes back to the page, which does.
   */
  async function requireSignIn(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    const session = signIn.current(ctx);
    const live = session && await findAccountSession(oidc, session.sub, session.sid);
    const account = live && await accounts.findBySub(session.sub);
    if (!session || !live || !account || account.disabled) {
      signIn.forget(ctx);
      if (ctx.method === 'GET') {
        ctx.redirect(await signIn.start(ctx, ctx.originalUrl));
      } else {
        seeOther(ctx, '/account');
      }
      return;
    }
    signIn.remember(ctx, session);
    ctx.state.signedIn = { session, sessionId: live.id, account } satisfies SignedIn;
    await next();
  }

  function factorsMayChange(ctx: Context): boolean {
    const { session, account } = signedIn(ctx);
    return mayChangeFactors(session, secondFactors.hasSecondFactor(account));
  }

  /**
   * Second factors change only shortly after a sign-in with the strongest factor the account has;
   * otherwise the person signs in again first (with that factor: the sign-in page asks for it).
   */
  async function requireRecentSignIn(ctx: Context, next: Next) {
    if (factorsMayChange(ctx)) return next();
    seeOther(ctx, `/account/signin?reauthenticate=1&return=${encodeURIComponent('/account#security')}`);
  }

  async function showPage(ctx: Context, extra: { errors?: Partial<Record<Section, string>>; values?: Record<string, string> } = {}) {
    const { account, sessionId, session } = signedIn(ctx);
    const names = clientNames();
    const [factors, sessions, apps, linked, offered] = await Promise.all([
      secondFactors.summary(account.sub),
      listSessions(oidc, account.sub, sessionId, config.ttl.session, names),
      listConnectedApps(oidc, account.sub, names).then((list) => list.map((app) => ({ ...app, scopeWords: describeScopes(app.scopes, pageTranslator(ctx).t) }))),
      identities.list(account.sub),
      upstreams.list(),
    ]);
    const upstreamNames = new Map(offered.map((upstream) => [upstream.id, upstream.name]));
    const done = typeof ctx.query.done === 'string' && DONE.has(ctx.query.done) ? ctx.query.done : undefined;
    await renderPage(ctx, 'account', {
      account,
      factors,
      sessions: sessions.map((view) => ({ ...view, handle: sessionHandle(view.id) })),
      apps,
      linkedIdentities: linked.map((identity) => ({ ...identity, upstreamName: upstreamNames.get(identity.upstreamId) ?? identity.upstreamId })),
      linkableUpstreams: offered.filter((upstream) => !linked.some((identity) => identity.upstreamId === upstream.id)),
      done,
      errors: extra.errors ?? {},
      values: extra.values ?? {},
      hasPassword: account.passwordHash !== undefined,
      passwordHint: accounts.passwordPolicy.hint,
      passwordMinLength: accounts.passwordPolicy.minLength,
      passwordMaxLength: accounts.passwordPolicy.maxLength,
      recentSignIn: mayChangeFactors(session, factors.enabled),
    });
  }

  /** Shows the page again with the refusal next to its form: 400 for a refused input, its own status otherwise. */
  async function refuse(ctx: Context, section: Section, error: unknown, values?: Record<string, string>) {
    if (!(error instanceof AppError) || !error.expose) throw error;
    ctx.status = error.status;
    await showPage(ctx, { errors: { [section]: error.message }, ...(values && { values }) });
  }

  /**
   * A destructive action asks first, and without JavaScript: posting its form shows a page with the
   * question and the same fields, and only that page's "Yes" (confirm=yes) does the work.
   */
  function confirmFirst(question: string, section: Section) {
    return async function askFirst(ctx: Context, next: Next) {
      if (formField(ctx, 'confirm') === 'yes') return next();
      const body = (ctx.request.body ?? {}) as Record<string, unknown>;
      const fields = Object.entries(body).filter((entry): entry is [string, string] => entry[0] !== '_csrf' && entry[0] !== 'confirm' && typeof entry[1] === 'string');
      ctx.set('Cache-Control', 'no-store');
      await renderPage(ctx, 'account-confirm', { question: `confirm.${question}`, action: ctx.path, fields, back: `/account#${section}` });
    };
  }

  router.use(bodyParser({ enableTypes: ['form'], formLimit: '32kb', encoding: 'utf-8' }));
  router.use(csrfProtection);

  router.get('/signin', async function startSignIn(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(await signIn.start(ctx, safeReturnPath(ctx.query.return), { reauthenticate: ctx.query.reauthenticate === '1' }));
  });

  router.get(ACCOUNT_CALLBACK_PATH.slice('/account'.length), async function finishSignIn(ctx) {
    ctx.set('Cache-Control', 'no-store');
    try {
      const { session, returnTo } = await signIn.finish(ctx);
      logger.info({ sub: session.sub }, 'signed in to the account page');
      ctx.redirect(returnTo);
    } catch (error) {
      if (!isAppError(error, 'ERR_INVALID_INPUT')) throw error;
      // An old tab whose sign-in another tab already finished: carry on with that one.
      if (signIn.current(ctx)) return ctx.redirect('/account');
      ctx.status = 400;
      await renderPage(ctx, 'account-signin-failed', { description: error.message });
    }
  });

  router.get('/', requireSignIn, async function showAccount(ctx) {
    await showPage(ctx);
  });

  router.post('/profile', requireSignIn, async function saveProfile(ctx) {
    const { account } = signedIn(ctx);
    const values = { name: formField(ctx, 'name'), givenName: formField(ctx, 'given_name'), familyName: formField(ctx, 'family_name') };
    try {
      await accounts.updateProfile(account.sub, values);
    } catch (error) {
      return refuse(ctx, 'profile', error, values);
    }
    logger.info({ sub: account.sub }, 'profile updated');
    seeOther(ctx, '/account?done=profile#profile');
  });

  /**
   * Changing a password proves the current one. An account without one (it signs in another way)
   * sets its first: there is no current password to ask for, so a recent sign-in stands in for it.
   */
  router.post('/password', requireSignIn, async function changePassword(ctx) {
    const { account, sessionId, session } = signedIn(ctx);
    const setting = account.passwordHash === undefined;
    if (setting && !signedInRecently(session)) {
      return seeOther(ctx, `/account/signin?reauthenticate=1&return=${encodeURIComponent('/account#password')}`);
    }
    const next = formField(ctx, 'new_password');
    // A stolen session must not make the current-password check a guessing oracle: it counts against
    // the sign-in limits (per address and per account; 429 over them) and, inside the try below, the lockout.
    await rateLimits.signIn(ctx, account.email);
    try {
      if (next !== formField(ctx, 'new_password_confirmation')) throw new AppError('ERR_INVALID_INPUT', 'The two new passwords do not match.');
      // The same check as signing in: one argon2 verify, and every attempt counts towards the lockout first.
      if (!setting) {
        await accounts.authenticate(account.email, formField(ctx, 'current_password'), { purpose: 'password-change' }).catch((error: unknown) => {
          throw isAppError(error, 'ERR_INVALID_CREDENTIALS') ? new AppError('ERR_INVALID_INPUT', 'Your current password is not right.') : error;
        });
      }
      await accounts.setPassword(account.sub, next);
    } catch (error) {
      return refuse(ctx, 'password', error);
    }
    const ended = await endOtherSessions(provider(), oidc, account.sub, sessionId, logout);
    if (config.security.revokeAppTokensOnPasswordChange) await revokeAppTokens(oidc, account.sub);
    logger.info({ sub: account.sub, sessionsEnded: ended }, setting ? 'password set on the account page' : 'password changed on the account page');
    if (ended) events.emit({ type: 'session.ended', sub: account.sub, details: { count: ended, reason: 'password_changed' } });
    seeOther(ctx, setting ? '/account?done=password-set#password' : '/account?done=password#password');
  });

  // A new confirmation link: limited like reset links (per address and per email), since both send mail to the account's address.
  router.post('/email/confirm-again', requireSignIn, async function sendConfirmationAgain(ctx) {
    const { account } = signedIn(ctx);
    if (account.emailVerified) return seeOther(ctx, '/account#profile');
    try {
      await rateLimits.passwordReset(ctx, account.email);
    } catch (error) {
      if (isAppError(error, 'ERR_RATE_LIMITED') && error.retryAfterSeconds) ctx.set('Retry-After', String(error.retryAfterSeconds));
      return refuse(ctx, 'profile', error);
    }
    await emailVerification.send(account, pageLocale(ctx));
    logger.info({ sub: account.sub }, 'confirmation email sent again');
    seeOther(ctx, '/account?done=verification-sent#profile');
  });

  router.post('/sessions/end-others', requireSignIn, confirmFirst('sessions-end-others', 'sessions'), async function endOthers(ctx) {
    const { account, sessionId } = signedIn(ctx);
    const ended = await endOtherSessions(provider(), oidc, account.sub, sessionId, logout);
    logger.info({ sub: account.sub, sessionsEnded: ended }, 'signed out everywhere else');
    if (ended) events.emit({ type: 'session.ended', sub: account.sub, details: { count: ended, reason: 'signed_out_elsewhere' } });
    seeOther(ctx, '/account?done=sessions-ended#sessions');
  });

  // One session, from the list: that browser must sign in again, and its apps hear of it.
  router.post('/sessions/end', requireSignIn, confirmFirst('session-end', 'sessions'), async function endOneSession(ctx) {
    const { account, sessionId } = signedIn(ctx);
    const handle = formField(ctx, 'session');
    const session = (await accountSessions(oidc, account.sub)).find(({ id }) => sessionHandle(id) === handle);
    if (!session) return refuse(ctx, 'sessions', new AppError('ERR_NOT_FOUND', 'That session has ended already.'));
    await destroySession(provider(), oidc, session, logout);
    logger.info({ sub: account.sub, current: session.id === sessionId }, 'signed out of one session');
    events.emit({ type: 'session.ended', sub: account.sub, details: { count: 1, reason: 'signed_out_one' } });
    if (session.id === sessionId) return seeOther(ctx, '/account');
    seeOther(ctx, '/account?done=session-ended#sessions');
  });

  router.post('/apps/revoke', requireSignIn, confirmFirst('app-revoke', 'apps'), async function revokeAccess(ctx) {
    const { account } = signedIn(ctx);
    const clientId = formField(ctx, 'client_id');
    if (!clientId || !(await revokeApp(provider(), oidc, account.sub, clientId))) {
      return refuse(ctx, 'apps', new AppError('ERR_NOT_FOUND', 'That app has no access to your account.'));
    }
    logger.info({ sub: account.sub, clientId }, 'app access revoked');
    events.emit({ type: 'consent.revoked', sub: account.sub, clientId });
    seeOther(ctx, '/account?done=revoked#apps');
  });

  // --- Second factors ---

  router.post('/totp/start', requireSignIn, requireRecentSignIn, async function startTotp(ctx) {
    try {
      await secondFactors.startTotpEnrolment(signedIn(ctx).account.sub, { restart: true });
    } catch (error) {
      return refuse(ctx, 'security', error);
    }
    seeOther(ctx, '/account/totp');
  });

  router.get('/totp', requireSignIn, async function showTotpEnrolment(ctx) {
    const { account } = signedIn(ctx);
    // Read-only: only continues an enrolment a POST started.
    if (!(await secondFactors.summary(account.sub)).totpPending) return ctx.redirect('/account#security');
    const enrolment = await secondFactors.startTotpEnrolment(account.sub);
    await renderPage(ctx, 'account-totp', { enrolment, error: undefined });
  });

  router.post('/totp/confirm', requireSignIn, requireRecentSignIn, async function confirmTotp(ctx) {
    const { account } = signedIn(ctx);
    const hadFactor = (await secondFactors.summary(account.sub)).enabled;
    try {
      await secondFactors.confirmTotp(account.sub, formField(ctx, 'code'));
    } catch (error) {
      if (!isAppError(error, 'ERR_SECOND_FACTOR_INVALID')) return refuse(ctx, 'security', error);
      ctx.status = 400;
      const enrolment = await secondFactors.startTotpEnrolment(account.sub);
      return renderPage(ctx, 'account-totp', { enrolment, error: error.message });
    }
    logger.info({ sub: account.sub }, 'authenticator app set up');
    if (!hadFactor) return showNewRecoveryCodes(ctx, account.sub);
    seeOther(ctx, '/account?done=totp-on#security');
  });

  router.post('/totp/remove', requireSignIn, requireRecentSignIn, confirmFirst('totp-remove', 'security'), async function removeTotp(ctx) {
    const { account } = signedIn(ctx);
    await secondFactors.disableTotp(account.sub);
    logger.info({ sub: account.sub }, 'authenticator app removed');
    seeOther(ctx, '/account?done=totp-off#security');
  });

  /** Makes ten new codes and sends the browser to the page that shows them, once. */
  async function showNewRecoveryCodes(ctx: Context, sub: string) {
    const codes = await secondFactors.generateRecoveryCodes(sub);
    const id = await notices.put(sub, codes);
    seeOther(ctx, `/account/recovery-codes?show=${encodeURIComponent(id)}`);
  }

  router.post('/recovery-codes', requireSignIn, requireRecentSignIn, confirmFirst('recovery-codes', 'security'), async function regenerateRecoveryCodes(ctx) {
    const { account } = signedIn(ctx);
    if (!(await secondFactors.summary(account.sub)).enabled) {
      return refuse(ctx, 'security', new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'Recovery codes back up a second factor: set one up first.'));
    }
    logger.info({ sub: account.sub }, 'recovery codes regenerated');
    await showNewRecoveryCodes(ctx, account.sub);
  });

  router.get('/recovery-codes', requireSignIn, async function showRecoveryCodes(ctx) {
    const { account } = signedIn(ctx);
    const codes = typeof ctx.query.show === 'string' ? await notices.take(account.sub, ctx.query.show) : undefined;
    await renderPage(ctx, 'account-recovery-codes', { codes });
  });

  router.post('/email-codes/enable', requireSignIn, requireRecentSignIn, async function enableEmailCodes(ctx) {
    const { account } = signedIn(ctx);
    const hadFactor = (await secondFactors.summary(account.sub)).enabled;
    try {
      if (account.emailVerified) {
        await secondFactors.enableEmailOtp(account.sub);
      } else {
        // An address not yet verified proves itself first: a code goes there.
        await secondFactors.startEmailOtpEnrolment(account.sub, pageLocale(ctx));
        return seeOther(ctx, '/account/email-codes');
      }
    } catch (error) {
      return refuse(ctx, 'security', error);
    }
    logger.info({ sub: account.sub }, 'codes by email turned on');
    if (!hadFactor) return showNewRecoveryCodes(ctx, account.sub);
    seeOther(ctx, '/account?done=email-codes-on#security');
  });

  router.get('/email-codes', requireSignIn, async function showEmailCodeForm(ctx) {
    await renderPage(ctx, 'account-email-code', { email: signedIn(ctx).account.email, error: undefined });
  });

  router.post('/email-codes/confirm', requireSignIn, requireRecentSignIn, async function confirmEmailCodes(ctx) {
    const { account } = signedIn(ctx);
    const hadFactor = (await secondFactors.summary(account.sub)).enabled;
    try {
      await secondFactors.confirmEmailOtp(account.sub, formField(ctx, 'code'));
    } catch (error) {
      if (!isAppError(error, 'ERR_SECOND_FACTOR_INVALID')) return refuse(ctx, 'security', error);
      ctx.status = 400;
      return renderPage(ctx, 'account-email-code', { email: account.email, error: error.message });
    }
    logger.info({ sub: account.sub }, 'codes by email turned on');
    if (!hadFactor) return showNewRecoveryCodes(ctx, account.sub);
    seeOther(ctx, '/account?done=email-codes-on#security');
  });

  router.post('/email-codes/disable', requireSignIn, requireRecentSignIn, confirmFirst('email-codes-disable', 'security'), async function disableEmailCodes(ctx) {
    const { account } = signedIn(ctx);
    await secondFactors.disableEmailOtp(account.sub);
    logger.info({ sub: account.sub }, 'codes by email turned off');
    seeOther(ctx, '/account?done=email-codes-off#security');
  });

  /** The options for navigator.credentials.create(), as JSON; the page's script asks for them. */
  router.post('/passkeys/options', requireSignIn, async function passkeyOptions(ctx) {
    if (!factorsMayChange(ctx)) {
      ctx.status = 401;
      ctx.body = { error: 'reauthenticate', error_description: localizeMessage(pageTranslator(ctx), 'Sign in again to add a passkey: reload the page.') };
      return;
    }
    try {
      ctx.body = await secondFactors.passkeyRegistrationOptions(signedIn(ctx).account.sub);
    } catch (error) {
      if (!(error instanceof AppError) || !error.expose) throw error;
      ctx.status = error.status;
      ctx.body = { error: error.code.toLowerCase().replace(/^err_/, ''), error_description: localizeMessage(pageTranslator(ctx), error.message) };
    }
  });

  router.post('/passkeys', requireSignIn, requireRecentSignIn, async function addPasskey(ctx) {
    const { account } = signedIn(ctx);
    const hadFactor = (await secondFactors.summary(account.sub)).enabled;
    try {
      await secondFactors.verifyPasskeyRegistration(account.sub, formField(ctx, 'credential'), formField(ctx, 'name'));
    } catch (error) {
      return refuse(ctx, 'security', error);
    }
    logger.info({ sub: account.sub }, 'passkey added');
    if (!hadFactor) return showNewRecoveryCodes(ctx, account.sub);
    seeOther(ctx, '/account?done=passkey-on#security');
  });

  router.post('/passkeys/remove', requireSignIn, requireRecentSignIn, confirmFirst('passkey-remove', 'security'), async function removePasskey(ctx) {
    const { account } = signedIn(ctx);
    try {
      await secondFactors.removePasskey(account.sub, formField(ctx, 'credential_id'));
    } catch (error) {
      return refuse(ctx, 'security', error);
    }
    logger.info({ sub: account.sub }, 'passkey removed');
    seeOther(ctx, '/account?done=passkey-off#security');
  });

  // Identities at upstream providers: link another (a round trip to it), unlink one (never the last way to sign in).
  router.post('/identities/link', requireSignIn, requireRecentSignIn, async function linkIdentity(ctx) {
    const { account } = signedIn(ctx);
    const upstream = await upstreams.find(formField(ctx, 'upstream'));
    if (!upstream) return refuse(ctx, 'identities', new AppError('ERR_NOT_FOUND', 'That way to sign in is not offered.'));
    await upstreamLinks.startLink(ctx, account.sub, upstream.id);
  });

  router.get('/identities/done', requireSignIn, async function finishLinkingIdentity(ctx) {
    const { account } = signedIn(ctx);
    const result = typeof ctx.query.handle === 'string' ? await upstreamLinks.takeLinkResult(ctx.query.handle, account.sub) : undefined;
    if (!result) return refuse(ctx, 'identities', new AppError('ERR_UPSTREAM_FAILED', 'That link expired or was made already. Try again.'));
    const existing = await identities.find(result.upstreamId, result.profile.subject);
    if (existing && existing.accountSub !== account.sub) {
      return refuse(ctx, 'identities', new AppError('ERR_IDENTITY_TAKEN', 'That account at the provider already signs in to another Tessera account.'));
    }
    if (!existing) {
      try {
        await identities.link(result.upstreamId, result.profile.subject, account.sub, result.profile.email, 'account_page');
      } catch (error) {
        return refuse(ctx, 'identities', error);
      }
    }
    logger.info({ sub: account.sub, upstream: result.upstreamId }, 'upstream identity linked from the account page');
    seeOther(ctx, '/account?done=identity-on#identities');
  });

  router.post('/identities/unlink', requireSignIn, requireRecentSignIn, confirmFirst('identity-unlink', 'identities'), async function unlinkIdentity(ctx) {
    const { account } = signedIn(ctx);
    try {
      const removed = await identities.unlink(account.sub, formField(ctx, 'upstream'), formField(ctx, 'subject'));
      if (!removed) throw new AppError('ERR_NOT_FOUND', 'That identity is not linked to your account.');
    } catch (error) {
      return refuse(ctx, 'identities', error);
    }
    logger.info({ sub: account.sub, upstream: formField(ctx, 'upstream') }, 'upstream identity unlinked');
    seeOther(ctx, '/account?done=identity-off#identities');
  });

  return router;
}
