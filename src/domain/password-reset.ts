/**
 * Password reset by email. Asking for a link always gets the same answer, whether an account has
 * that address or not (no enumeration); the page runs `request` in the background so the answer
 * takes the same time too. A link works once and for a short while; choosing a new password through it
 * applies the password policy, lifts any lockout, marks the address verified (the link proved the
 * mailbox, and removes upstream identities linked while it was unverified), ends every session of the account (and, unless REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE=false,
 * the refresh tokens of its apps) and kills the account's other reset links.
 */
import type { Locale } from '../i18n/locales.ts';
import type { Account, AccountRepository, OidcStore } from '../store/port.ts';
import type { SessionLogout } from './backchannel-logout.ts';
import type { AccountService } from './accounts.ts';
import { passwordResetMessage } from './account-mail.ts';
import type { LinkTokens } from './link-tokens.ts';
import type { Mailer } from './mailer.ts';
import type { PasswordProblem } from './password-policy.ts';

export const FORGOT_PASSWORD_PATH = '/password/forgot';
export const RESET_PASSWORD_PATH = '/password/reset';

/** An interaction uid as oidc-provider makes them; anything else is dropped from links. */
const INTERACTION_UID = /^[A-Za-z0-9_-]{1,64}$/;

export function interactionUid(value: unknown): string | undefined {
  return typeof value === 'string' && INTERACTION_UID.test(value) ? value : undefined;
}

export interface PasswordResetDependencies {
  accounts: AccountService;
  repository: AccountRepository;
  oidc: OidcStore;
  tokens: LinkTokens;
  mailer: Mailer;
  issuer: string;
  /** REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE: a reset also ends the apps' refresh tokens. */
  revokeAppTokens: boolean;
  /** Upstream identities (identities.ts): a reset of an unverified address removes them. */
  identities?: { unlinkAll(accountSub: string, reason: string): Promise<number> };
  /** The apps signed in through the sessions a reset ends hear of it (OIDC Back-Channel Logout). */
  logout?: SessionLogout;
}

export type ResetOutcome =
  | { ok: true; account: Account; sessionsEnded: number }
  | { ok: false; reason: 'invalid_link' }
  | { ok: false; reason: 'rejected_password'; problem: PasswordProblem };

/** Ends every sign-in session of an account, in every browser: the next authorization request asks to sign in. */
export async function endAllSessions(oidc: OidcStore, accountId: string, logout?: SessionLogout): Promise<number> {
  const sessions = await oidc.findByAccountId('Session', accountId);
  for (const { id } of sessions) await oidc.destroy('Session', id);
  logout?.sessionsEnded(sessions);
  return sessions.length;
}

/**
 * Ends the refresh tokens and stored access tokens of every app the account let in (its grants stay,
 * so no consent is asked again, but each app must send the person to sign in again). Returns how many
 * grants had their tokens ended.
 */
export async function revokeAppTokens(oidc: OidcStore, accountId: string): Promise<number> {
  const grants = await oidc.findByAccountId('Grant', accountId);
  for (const { id } of grants) {
    await oidc.revokeByGrantId('RefreshToken', id);
    await oidc.revokeByGrantId('AccessToken', id);
  }
  return grants.length;
}

export class PasswordReset {
  readonly #deps: PasswordResetDependencies;

  constructor(deps: PasswordResetDependencies) {
    this.#deps = deps;
  }

  get ttlSeconds(): number {
    return this.#deps.tokens.ttlSeconds;
  }

  /**
   * Sends a reset link if an enabled account has this address, and returns that account (for the
   * log; never for the page). `uid` (a sign-in in progress) is carried in the link, so the person
   * can go on signing in afterwards.
   */
  async request(email: string, options: { uid?: string | undefined; locale?: Locale } = {}): Promise<Account | undefined> {
    const { accounts, tokens, mailer, issuer } = this.#deps;
    const uid = interactionUid(options.uid);
    const account = await accounts.findByEmail(email);
    if (!account || account.disabled) return undefined;
    const token = await tokens.issue({ accountId: account.sub, email: account.email });
    const link = `${issuer}${RESET_PASSWORD_PATH}?token=${encodeURIComponent(token)}${uid ? `&uid=${uid}` : ''}`;
    await mailer.send(passwordResetMessage(account.email, link, tokens.ttlSeconds, options.locale));
    return account;
  }

  /** The account a live link is for, without using the link up (to show the form). */
  async peek(token: string): Promise<Account | undefined> {
    const payload = await this.#deps.tokens.peek(token);
    if (!payload) return undefined;
    const account = await this.#deps.accounts.findBySub(payload.accountId);
    return account && !account.disabled && account.email === payload.email ? account : undefined;
  }

  /**
   * Sets the new password. The policy is checked before the link is used up, so a refused password
   * leaves the link working for a second try.
   */
  async complete(token: string, password: string): Promise<ResetOutcome> {
    const { accounts, repository, oidc, tokens } = this.#deps;
    const account = await this.peek(token);
    if (!account) return { ok: false, reason: 'invalid_link' };
    const problem = await accounts.passwordPolicy.check(password, { email: account.email });
    if (problem) return { ok: false, reason: 'rejected_password', problem };
    const payload = await tokens.redeem(token);
    if (!payload || payload.accountId !== account.sub) return { ok: false, reason: 'invalid_link' };

    await accounts.setPassword(account.sub, password, 'reset');
    if (!account.emailVerified) {
      // Until now nobody had shown they hold this mailbox: an identity that an upstream (or a
      // password) linked meanwhile may be someone else's, made in advance to take the account over
      // once its owner claims it. The mailbox's holder has the last word: those links go.
      await this.#deps.identities?.unlinkAll(account.sub, 'address_proved_by_reset');
      await repository.update(account.sub, { emailVerified: true });
    }
    const sessionsEnded = await endAllSessions(oidc, account.sub, this.#deps.logout);
    if (this.#deps.revokeAppTokens) await revokeAppTokens(oidc, account.sub);
    await tokens.revokeAll(account.sub);
    return { ok: true, account, sessionsEnded };
  }
}
