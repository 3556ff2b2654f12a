/**
 * Accounts: registration, sign-in and the claims an account releases. Plain TypeScript on top of the
 * AccountRepository port; the pages, the CLI and oidc-provider's findAccount all go through here.
 */
import { z } from 'zod';

import { AppError } from '../errors.ts';
import type { Account, AccountPage, AccountRepository, AccountSearch } from '../store/port.ts';
import { emailLookupKey, normaliseEmail } from './email.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import type { LockoutPolicy } from './lockout.ts';
import type { PasswordHasher } from './password.ts';
import { PASSWORD_MAX_LENGTH, passwordLength, type PasswordPolicy } from './password-policy.ts';
import { randomId } from './random.ts';

export const INVALID_CREDENTIALS = 'Invalid email or password';

/** The default floor (PASSWORD_MIN_LENGTH); the rules themselves live in password-policy.ts. */
export const PASSWORD_MIN_LENGTH = 12;
export { PASSWORD_MAX_LENGTH };

/** The lookup key of an address (email.ts): one spelling per mailbox, so uniqueness means what people expect. */
export function normalizeEmail(email: string): string {
  return emailLookupKey(email);
}

/** Every way in that creates or changes an account's address parses it with this: email.ts's one rule. */
export const emailSchema = z.string().transform((value, ctx) => {
  const normalised = normaliseEmail(value);
  if (normalised.ok) return normalised.email;
  ctx.addIssue({ code: 'custom', message: normalised.message, params: { code: normalised.code } });
  return z.NEVER;
});


const optionalName = z
  .string()
  .trim()
  .max(100, 'Names are limited to 100 characters')
  .optional()
  .transform((value) => (value ? value : undefined));

export const registrationSchema = z.object({
  email: emailSchema,
  // Length, leaked-password and email checks are the PasswordPolicy's (AccountService.register).
  password: z.string({ error: 'Choose a password' }),
  name: optionalName,
  givenName: optionalName,
  familyName: optionalName,
});

export type Registration = z.input<typeof registrationSchema>;

/** The claims Tessera can release, by the scope that releases them (OIDC Core 5.4). */
export const CLAIMS_BY_SCOPE = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name'],
  email: ['email', 'email_verified'],
  roles: ['roles'],
} as const;

export type AccountClaims = {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  given_name?: string;
  family_name?: string;
  /** Always an array (possibly empty) when released, so RPs need not special-case its absence. */
  roles?: string[];
};

export function claimsOf(account: Account): AccountClaims {
  return {
    sub: account.sub,
    email: account.email,
    email_verified: account.emailVerified,
    name: account.name,
    given_name: account.givenName,
    family_name: account.familyName,
    roles: [...(account.roles ?? [])],
  };
}

export class AccountService {
  readonly #accounts: AccountRepository;
  readonly #hasher: PasswordHasher;
  readonly #policy: PasswordPolicy;
  readonly #lockout: LockoutPolicy;
  readonly #events: SecurityEvents;

  constructor(accounts: AccountRepository, hasher: PasswordHasher, security: { policy: PasswordPolicy; lockout: LockoutPolicy; events?: SecurityEvents }) {
    this.#accounts = accounts;
    this.#hasher = hasher;
    this.#policy = security.policy;
    this.#lockout = security.lockout;
    this.#events = security.events ?? NO_SECURITY_EVENTS;
  }

  /** The rules for new passwords: registration, reset and change all go through it. */
  get passwordPolicy(): PasswordPolicy {
    return this.#policy;
  }

  /** Validates, hashes and stores a new account. Throws ERR_INVALID_INPUT (with readable issues) or ERR_EMAIL_TAKEN. */
  async register(input: Registration): Promise<Account> {
    const parsed = registrationSchema.safeParse(input);
    const problems = parsed.success ? [] : parsed.error.issues.map((issue) => issue.message);
    if (typeof input?.password === 'string') {
      const email = typeof input.email === 'string' ? normalizeEmail(input.email) : undefined;
      const problem = await this.#policy.check(input.password, { email });
      if (problem) problems.push(problem.message);
    }
    if (!parsed.success || problems.length) {
      throw new AppError('ERR_INVALID_INPUT', problems.join('. '));
    }
    const { password, ...profile } = parsed.data;
    const account = await this.#accounts.create({
      sub: randomId(16),
      email: profile.email,
      emailVerified: false,
      passwordHash: await this.#hasher.hash(password),
      name: profile.name,
      givenName: profile.givenName,
      familyName: profile.familyName,
      disabled: false,
    });
    this.#events.emit({ type: 'account.created', sub: account.sub });
    return account;
  }

  /**
   * Checks an email and password with exactly one argon2id verify (against a decoy when the password
   * may not be checked) and one counting store write before it, whatever the outcome, and the same
   * error for an unknown email, a wrong password, a disabled account, a locked one and one without a
   * password (no enumeration, and a lock cannot be told apart from a wrong password, even by timing).
   * Every attempt counts towards the lockout before the verify (see lockout.ts); a success resets the count.
   * A hash made with older parameters, or brought by an import in another algorithm (bcrypt, scrypt,
   * PBKDF2, ...: verified with its own), is replaced by an argon2id one on success, in the write
   * that records the success.
   * A failure is a `signin.failed` event saying why (for operators only, never for the person);
   * `attempt` says where it came from. The typed email is never recorded: people type passwords there.
   */
  async authenticate(emailInput: string, password: string, attempt: { clientId?: string; purpose?: 'sign-in' | 'password-change' } = {}): Promise<Account> {
    const account = typeof emailInput === 'string' && emailInput.length <= 254
      ? await this.#accounts.findByEmail(normalizeEmail(emailInput))
      : undefined;
    const usable = typeof password === 'string' && password.length > 0 && passwordLength(password) <= PASSWORD_MAX_LENGTH;
    const now = new Date();
    // An account without a password (it signs in another way) is counted and verified like an
    // unknown email: no password, however right, signs in to it, there is nothing to protect by
    // locking it, and its owner would be told about a password they do not have. Same one write.
    const hash = account?.passwordHash;
    // Counted before the verify: concurrent guesses cannot all be checked before one counts.
    const counted = await this.#lockout.beginAttempt(hash === undefined ? undefined : account, now);
    const ok = account && hash !== undefined && usable && counted.mayCheck
      ? await this.#hasher.verify(hash, password)
      : await this.#hasher.verifyDecoy(usable ? password : '');
    // A right password is recorded only if the count is still within the threshold now that it is
    // checked (one conditional write): attempts counted meanwhile, a burst, keep it out like a lock.
    // An imported hash (bcrypt, PBKDF2, ...) or one made with older parameters becomes argon2id in
    // the same write: no moment where the count is reset but the old hash kept.
    const accepted = account !== undefined && hash !== undefined && ok && counted.mayCheck
      && await this.#lockout.recordSuccess(account, this.#hasher.needsRehash(hash) ? { passwordHash: await this.#hasher.hash(password) } : {}, now);
    if (!account || hash === undefined || !accepted) {
      const reason = !account ? 'unknown_account' : account.disabled ? 'disabled' : hash === undefined ? 'no_password' : !counted.mayCheck || ok ? 'locked' : 'wrong_password';
      // Before the failure is counted: a lockout it causes is announced after it.
      this.#events.emit({
        type: 'signin.failed',
        ...(account && { sub: account.sub }),
        ...(attempt.clientId !== undefined && { clientId: attempt.clientId }),
        details: { reason, factor: 'password', ...(attempt.purpose && attempt.purpose !== 'sign-in' && { purpose: attempt.purpose }) },
      });
      // Every counted attempt that did not sign in, checked or not: whichever first sees the threshold reached locks.
      if (account && hash !== undefined) await this.#lockout.recordFailure(account, counted, now);
      throw new AppError('ERR_INVALID_CREDENTIALS', INVALID_CREDENTIALS);
    }
    return account;
  }

  /**
   * Replaces the password of an account (the policy applies: ERR_INVALID_INPUT with the reason) and
   * lifts any lockout. Which sessions end is the caller's decision (a reset ends them all).
   * `how` names the security event: `password.changed` or, through a reset link, `password.reset`.
   */
  async setPassword(sub: string, password: string, how: 'changed' | 'reset' = 'changed'): Promise<void> {
    const account = await this.#accounts.findBySub(sub);
    if (!account) throw new AppError('ERR_NOT_FOUND', 'There is no such account.');
    const problem = await this.#policy.check(password, { email: account.email });
    if (problem) throw new AppError('ERR_INVALID_INPUT', problem.message);
    await this.#accounts.update(sub, { passwordHash: await this.#hasher.hash(password), failedSignIns: 0, lockouts: 0, lockedUntil: null });
    this.#events.emit({ type: how === 'reset' ? 'password.reset' : 'password.changed', sub });
  }

  /** Lifts a lockout (`tessera users unlock`). Returns false when no account has that email. */
  async unlock(emailInput: string): Promise<boolean> {
    const account = await this.findByEmail(emailInput);
    const unlocked = account ? await this.#lockout.unlock(account.sub) : false;
    if (account && unlocked) this.#events.emit({ type: 'account.unlocked', sub: account.sub });
    return unlocked;
  }

  findBySub(sub: string): Promise<Account | undefined> {
    return this.#accounts.findBySub(sub);
  }

  findByEmail(emailInput: string): Promise<Account | undefined> {
    return this.#accounts.findByEmail(normalizeEmail(emailInput));
  }

  /** Oldest first; `offset` and `limit` page through them (the admin API). */
  list(options?: { limit?: number; offset?: number }): Promise<Account[]> {
    return this.#accounts.list(options);
  }

  /** One page of accounts by email prefix, part of the email, role or status, through the store's indexes (the admin API). */
  search(search: AccountSearch): Promise<AccountPage> {
    return this.#accounts.search(search);
  }

  /** How many accounts there are, or how many are locked at `lockedAt`: cheap at any size (the console's overview). */
  count(filter?: { lockedAt?: Date }): Promise<number> {
    return this.#accounts.count(filter);
  }

  /** Returns false when no account has that email. */
  async setDisabled(emailInput: string, disabled: boolean): Promise<boolean> {
    const account = await this.findByEmail(emailInput);
    const changed = account ? await this.#accounts.update(account.sub, { disabled }) : false;
    if (account && changed) this.#events.emit({ type: disabled ? 'account.disabled' : 'account.enabled', sub: account.sub });
    return changed;
  }

  /** The account page's profile form: an empty name clears it. Throws ERR_INVALID_INPUT or ERR_NOT_FOUND. */
  async updateProfile(sub: string, input: { name?: string; givenName?: string; familyName?: string }): Promise<void> {
    const parsed = profileSchema.safeParse(input);
    if (!parsed.success) throw new AppError('ERR_INVALID_INPUT', parsed.error.issues.map((issue) => issue.message).join('. '));
    const { name, givenName, familyName } = parsed.data;
    const updated = await this.#accounts.update(sub, { name: name ?? null, givenName: givenName ?? null, familyName: familyName ?? null });
    if (!updated) throw new AppError('ERR_NOT_FOUND', 'There is no such account.');
  }
}

const profileSchema = z.object({ name: optionalName, givenName: optionalName, familyName: optionalName });
