/**
 * Account lockout. Every sign-in attempt is counted in the store with one atomic increment BEFORE its
 * password is checked, and a success resets the count, so a burst of concurrent guesses (on one
 * instance or several sharing a store) gets at most `threshold` checks. Once the count has reached
 * the threshold, the first failed attempt to say so locks the account and tells its owner (one
 * conditional store write, so one lock and one mail however many guesses were in flight). A right
 * password is let in only if, once it is checked, the count is still within the threshold: a burst
 * of more guesses than that lets none in, the right one sent first or last. Each further lockout
 * without a successful sign-in in between lasts twice as long as the one before, up to a day.
 *
 * Nothing about a lock is ever shown to the person signing in: a locked account answers like an
 * unknown email or a wrong password (see AccountService.authenticate).
 */
import type { Account, AccountChanges, AccountRepository } from '../store/port.ts';

export const MAX_LOCKOUT_SECONDS = 86_400;

/** A `sub` no account has: failures that must not count still cost the same store write as those that do. */
const NOBODY = '\u0000no-account';

export interface LockoutSettings {
  /** Consecutive failures that lock the account. */
  readonly threshold: number;
  /** Length of the first lockout. */
  readonly seconds: number;
}

/** Called once per lockout, after it is stored. Must not throw; slow work belongs in the background. */
export type LockoutListener = (account: Account, lockedUntil: Date) => void;

/** Seconds the next lockout lasts, given how many came before it since the last successful sign-in. */
export function lockoutSeconds(settings: LockoutSettings, previousLockouts: number): number {
  return Math.min(settings.seconds * 2 ** Math.min(previousLockouts, 32), MAX_LOCKOUT_SECONDS);
}

export function isLocked(account: Pick<Account, 'lockedUntil'>, now = new Date()): boolean {
  return account.lockedUntil !== undefined && account.lockedUntil.getTime() > now.getTime();
}

/** What counting an attempt answered. */
export interface Attempt {
  /** False while locked, past the threshold, or for an unknown or disabled account: answer as a wrong password. */
  readonly mayCheck: boolean;
  /** The account's count including this attempt, or more (see countSignInAttempt; 0 when not counted). */
  readonly attempts: number;
  /** Whether it was counted: false while locked and for an unknown or disabled account. */
  readonly counted: boolean;
}

export class LockoutPolicy {
  readonly #accounts: AccountRepository;
  readonly #settings: LockoutSettings;
  readonly #listeners: LockoutListener[] = [];

  constructor(accounts: AccountRepository, settings: LockoutSettings) {
    this.#accounts = accounts;
    this.#settings = settings;
  }

  onLocked(listener: LockoutListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Counts a sign-in attempt BEFORE its password is checked (one atomic store step), so concurrent
   * guesses cannot all be checked before the first failure counts. Answers whether the password may
   * be checked at all: not while locked, and not past the threshold (the lock of the attempt that
   * reached it may still be on its way). `account` is undefined for an unknown email; unknown and
   * disabled accounts are not counted but cost the same store round trip.
   */
  async beginAttempt(account: Account | undefined, now = new Date()): Promise<Attempt> {
    if (!account || account.disabled) {
      await this.#accounts.countSignInAttempt(NOBODY, now);
      return { mayCheck: false, attempts: 0, counted: false };
    }
    const counted = await this.#accounts.countSignInAttempt(account.sub, now);
    if (!counted || counted.lockedUntil) return { mayCheck: false, attempts: counted?.attempts ?? 0, counted: false };
    return { mayCheck: counted.attempts <= this.#settings.threshold, attempts: counted.attempts, counted: true };
  }

  /**
   * After a counted attempt that did not sign in (a wrong password, one not checked past the
   * threshold, or a right one refused by recordSuccess): once the count has reached the threshold
   * the account is locked and its owner told. The lock is the store's conditional write (it resets
   * the count), so however many attempts see the threshold reached, one locks.
   */
  async recordFailure(account: Account, attempt: Attempt, now = new Date()): Promise<void> {
    if (!attempt.counted || attempt.attempts < this.#settings.threshold) return;
    const lockedUntil = new Date(now.getTime() + lockoutSeconds(this.#settings, account.lockouts) * 1000);
    if (!await this.#accounts.lockAfterFailures(account.sub, this.#settings.threshold, lockedUntil)) return;
    for (const listener of this.#listeners) listener(account, lockedUntil);
  }

  /**
   * After a right password: records the success (the count, which this attempt raised, and the
   * escalation start over; `also` joins that write, a password rehashed to argon2id, so both land
   * together or not at all) only if no more than `threshold` attempts were counted by the time this one
   * was decided. A burst of more guesses than the threshold, the right one among them, lets none in
   * (however the store ordered their counts): false, and the caller answers as for a wrong password
   * and calls recordFailure, since this attempt may be the one whose count reached the threshold.
   */
  async recordSuccess(account: Account, also: AccountChanges = {}, now = new Date()): Promise<boolean> {
    return this.#accounts.acceptSignIn(account.sub, this.#settings.threshold, now, also);
  }

  /** Lifts a lock (an operator's `users unlock`, or a password reset). */
  async unlock(sub: string): Promise<boolean> {
    return this.#accounts.update(sub, { failedSignIns: 0, lockouts: 0, lockedUntil: null });
  }
}
