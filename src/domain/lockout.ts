/**
 * Account lockout. Failed sign-ins are counted in the store with one atomic increment, so several
 * Tessera instances sharing a store agree: exactly one failure is the one that reaches the threshold,
 * and that one locks the account and tells its owner. Each further lockout without a successful
 * sign-in in between lasts twice as long as the one before, up to a day.
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
   * Records a failed sign-in. `account` is undefined for an unknown email; failures against an
   * account that is already locked or disabled are not counted (a lock is not extended by guessing
   * on), but cost the same store round trip, so timing does not tell these cases apart.
   */
  async recordFailure(account: Account | undefined, now = new Date()): Promise<void> {
    if (!account || account.disabled || isLocked(account, now)) {
      await this.#accounts.recordFailedSignIn(NOBODY);
      return;
    }
    const failures = await this.#accounts.recordFailedSignIn(account.sub);
    if (failures !== this.#settings.threshold) return;
    const lockedUntil = new Date(now.getTime() + lockoutSeconds(this.#settings, account.lockouts) * 1000);
    await this.#accounts.update(account.sub, { lockedUntil, lockouts: account.lockouts + 1, failedSignIns: 0 });
    for (const listener of this.#listeners) listener(account, lockedUntil);
  }

  /** After a successful sign-in: the count and the escalation start over; `also` joins that write (a rehashed password). */
  async recordSuccess(account: Account, also: AccountChanges = {}): Promise<void> {
    const clean = account.failedSignIns === 0 && account.lockouts === 0 && account.lockedUntil === undefined;
    if (clean && Object.keys(also).length === 0) return;
    await this.#accounts.update(account.sub, clean ? also : { ...also, failedSignIns: 0, lockouts: 0, lockedUntil: null });
  }

  /** Lifts a lock (an operator's `users unlock`, or a password reset). */
  async unlock(sub: string): Promise<boolean> {
    return this.#accounts.update(sub, { failedSignIns: 0, lockouts: 0, lockedUntil: null });
  }
}
