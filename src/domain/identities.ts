/**
 * Identities at upstream providers and the accounts they sign in to. An identity is keyed by
 * (upstream id, upstream subject), never by email: anyone can create an identity with any address
 * at some provider, so an address alone never signs anyone in as an existing account. It links to
 * the account with that address only when the upstream is trusted for email (`trustEmail`) and
 * says the address is verified; otherwise the person proves the existing account first.
 */
import { AppError, isAppError } from '../errors.ts';
import type { Account, AccountRepository, FederatedIdentity, IdentityRepository } from '../store/port.ts';
import { normaliseEmail } from './email.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import { isLocked } from './lockout.ts';
import { randomId } from './random.ts';
import type { Upstream } from './upstreams.ts';

/** Who the upstream says the person is, from the validated ID token (or GitHub's API). */
export interface UpstreamProfile {
  subject: string;
  email?: string | undefined;
  /** As the upstream says; believed only for trustEmail upstreams. */
  emailVerified: boolean;
  name?: string | undefined;
  givenName?: string | undefined;
  familyName?: string | undefined;
}

export type UpstreamSignIn =
  | { outcome: 'signed-in'; account: Account; created: boolean; linked: boolean }
  /** An account with this address exists and the upstream may not vouch for it: the person proves that account, or stops. */
  | { outcome: 'needs-proof'; account: Account };

const NOT_ALLOWED = 'This account cannot sign in right now.';
/** Far longer than writing an identity and then its account takes. */
const UNFINISHED_SIGN_UP_MS = 60_000;

/** A failed upstream sign-in: the message is for the person, `reason` for operators (audit trail), `cause` for the log. */
export function upstreamFailed(message: string, reason: string, options: { cause?: unknown } = {}): AppError {
  const error = new AppError('ERR_UPSTREAM_FAILED', message, { cause: options.cause });
  (error as AppError & { reason?: string }).reason = reason;
  return error;
}

export class IdentityService {
  readonly #identities: IdentityRepository;
  readonly #accounts: AccountRepository;
  readonly #events: SecurityEvents;

  constructor(identities: IdentityRepository, accounts: AccountRepository, events: SecurityEvents = NO_SECURITY_EVENTS) {
    this.#identities = identities;
    this.#accounts = accounts;
    this.#events = events;
  }

  /**
   * The account this upstream identity signs in to, creating it (without a password) on the first
   * sign-in. A disabled or locked account is refused (ERR_ACCOUNT_DISABLED), as it is for a password.
   */
  async signIn(upstream: Upstream, profile: UpstreamProfile, now = new Date()): Promise<UpstreamSignIn> {
    const known = await this.#identities.find(upstream.id, profile.subject);
    if (known) {
      const account = await this.#accounts.findBySub(known.accountSub);
      if (account) return { outcome: 'signed-in', account: usable(account, now), created: false, linked: false };
      // An identity whose account never came (a first sign-in cut short by a crash) is cleared once
      // it is older than any first sign-in still under way; a younger one may be that sign-in.
      if (now.getTime() - known.createdAt.getTime() < UNFINISHED_SIGN_UP_MS) {
        throw upstreamFailed('This sign-in is already under way in another window. Try again.', 'concurrent_sign_in');
      }
      await this.#identities.delete(known.upstreamId, known.subject, known.accountSub);
    }
    if (!profile.email) {
      throw upstreamFailed(`${upstream.name} did not share an email address, which a Tessera account needs. Allow access to your email at ${upstream.name}, or use another way to sign in.`, 'no_email');
    }
    // The one rule for addresses (email.ts): an address that only looks like another is refused here too.
    const normalised = normaliseEmail(profile.email);
    if (!normalised.ok) throw upstreamFailed(`${upstream.name} gave an email address Tessera cannot use (${normalised.message}). Use another way to sign in.`, 'invalid_email');
    const email = normalised.email;
    const trusted = upstream.trustEmail && profile.emailVerified;
    const existing = await this.#accounts.findByEmail(email);
    if (existing) {
      if (!trusted) return { outcome: 'needs-proof', account: existing };
      usable(existing, now);
      await this.link(upstream.id, profile.subject, existing.sub, email, 'trusted_email');
      return { outcome: 'signed-in', account: existing, created: false, linked: true };
    }
    return { outcome: 'signed-in', account: await this.#create(upstream, profile, email, trusted, now), created: true, linked: true };
  }

  /**
   * The identity is written first, then the account it points to; if the account cannot be made (a
   * concurrent sign-up took the address) the identity is removed again, so no half-made account or
   * dangling identity is left. Of two concurrent first sign-ins, the second finds the first's account.
   */
  async #create(upstream: Upstream, profile: UpstreamProfile, email: string, emailVerified: boolean, now: Date): Promise<Account> {
    const sub = randomId(16);
    try {
      await this.#identities.create({ upstreamId: upstream.id, subject: profile.subject, accountSub: sub, email, createdAt: now });
    } catch (error) {
      if (!isAppError(error, 'ERR_IDENTITY_TAKEN')) throw error;
      throw upstreamFailed('This sign-in is already under way in another window. Try again.', 'concurrent_sign_in');
    }
    try {
      const account = await this.#accounts.create({
        sub,
        email,
        emailVerified,
        name: clip(profile.name),
        givenName: clip(profile.givenName),
        familyName: clip(profile.familyName),
        disabled: false,
      });
      this.#events.emit({ type: 'account.created', sub, details: { upstream: upstream.id } });
      this.#events.emit({ type: 'identity.linked', sub, details: { upstream: upstream.id, how: 'new_account' } });
      return account;
    } catch (error) {
      await this.#identities.delete(upstream.id, profile.subject, sub);
      if (isAppError(error, 'ERR_EMAIL_TAKEN')) throw upstreamFailed('An account with this email address was created at the same moment. Try again.', 'concurrent_sign_in');
      throw error;
    }
  }

  /** Links an upstream identity to an account the person has proved. ERR_IDENTITY_TAKEN when it belongs to an account already. */
  async link(upstreamId: string, subject: string, accountSub: string, email: string | undefined, how: string): Promise<FederatedIdentity> {
    const identity = await this.#identities.create({ upstreamId, subject, accountSub, ...(email !== undefined && { email }), createdAt: new Date() });
    this.#events.emit({ type: 'identity.linked', sub: accountSub, details: { upstream: upstreamId, how } });
    return identity;
  }

  /** Removes every identity of the account (a password reset of an unverified address); returns how many. */
  async unlinkAll(accountSub: string, reason: string): Promise<number> {
    let removed = 0;
    for (const identity of await this.#identities.listByAccount(accountSub)) {
      if (await this.#identities.delete(identity.upstreamId, identity.subject, accountSub)) {
        removed += 1;
        this.#events.emit({ type: 'identity.unlinked', sub: accountSub, details: { upstream: identity.upstreamId, reason } });
      }
    }
    return removed;
  }

  async find(upstreamId: string, subject: string): Promise<FederatedIdentity | undefined> {
    return this.#identities.find(upstreamId, subject);
  }

  async list(accountSub: string): Promise<FederatedIdentity[]> {
    return this.#identities.listByAccount(accountSub);
  }

  /**
   * Unlinks one identity of the account, but never the last way to sign in: an account without a
   * password and without passkeys keeps its last identity (ERR_INVALID_INPUT).
   */
  async unlink(accountSub: string, upstreamId: string, subject: string): Promise<boolean> {
    const account = await this.#accounts.findBySub(accountSub);
    if (!account) return false;
    const identities = await this.#identities.listByAccount(accountSub);
    if (!identities.some((identity) => identity.upstreamId === upstreamId && identity.subject === subject)) return false;
    if (!hasPassword(account) && account.passkeys.length === 0 && identities.length <= 1) {
      throw new AppError('ERR_INVALID_INPUT', 'This is your only way to sign in. Set a password or link another provider first.');
    }
    const removed = await this.#identities.delete(upstreamId, subject, accountSub);
    if (removed) this.#events.emit({ type: 'identity.unlinked', sub: accountSub, details: { upstream: upstreamId } });
    return removed;
  }
}

/** Accounts born at an upstream have no password hash until the person sets one. */
export function hasPassword(account: Pick<Account, 'passwordHash'>): boolean {
  return Boolean(account.passwordHash);
}

function usable(account: Account, now: Date): Account {
  if (account.disabled || isLocked(account, now)) throw new AppError('ERR_ACCOUNT_DISABLED', NOT_ALLOWED);
  return account;
}

/** Profile claims from elsewhere are shown and released as claims: bounded, like the registration form's. */
function clip(value: string | undefined): string | undefined {
  const trimmed = typeof value === 'string' ? value.trim().slice(0, 200) : '';
  return trimmed || undefined;
}
