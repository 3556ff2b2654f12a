/**
 * Accounts: registration, sign-in and the claims an account releases. Plain TypeScript on top of the
 * AccountRepository port; the pages, the CLI and oidc-provider's findAccount all go through here.
 */
import { z } from 'zod';

import { AppError } from '../errors.ts';
import type { Account, AccountRepository } from '../store/port.ts';
import type { PasswordHasher } from './password.ts';
import { randomId } from './random.ts';

export const INVALID_CREDENTIALS = 'Invalid email or password';

/** NIST SP 800-63B: no composition rules; a length floor, and a generous ceiling that bounds hashing work. */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

/** Trim, Unicode NFC, lower-case: one spelling per mailbox, so uniqueness means what people expect. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}

const email = z
  .string()
  .transform(normalizeEmail)
  .pipe(z.string().max(254, 'Email is too long').regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, 'Enter a valid email address'));

const optionalName = z
  .string()
  .trim()
  .max(100, 'Names are limited to 100 characters')
  .optional()
  .transform((value) => (value ? value : undefined));

export const registrationSchema = z.object({
  email,
  password: z
    .string()
    .min(PASSWORD_MIN_LENGTH, `Use at least ${PASSWORD_MIN_LENGTH} characters for your password`)
    .max(PASSWORD_MAX_LENGTH, `Passwords are limited to ${PASSWORD_MAX_LENGTH} characters`),
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
} as const;

export type AccountClaims = {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  given_name?: string;
  family_name?: string;
};

export function claimsOf(account: Account): AccountClaims {
  return {
    sub: account.sub,
    email: account.email,
    email_verified: account.emailVerified,
    name: account.name,
    given_name: account.givenName,
    family_name: account.familyName,
  };
}

export class AccountService {
  readonly #accounts: AccountRepository;
  readonly #hasher: PasswordHasher;

  constructor(accounts: AccountRepository, hasher: PasswordHasher) {
    this.#accounts = accounts;
    this.#hasher = hasher;
  }

  /** Validates, hashes and stores a new account. Throws ERR_INVALID_INPUT (with readable issues) or ERR_EMAIL_TAKEN. */
  async register(input: Registration): Promise<Account> {
    const parsed = registrationSchema.safeParse(input);
    if (!parsed.success) {
      throw new AppError('ERR_INVALID_INPUT', parsed.error.issues.map((issue) => issue.message).join('. '));
    }
    const { password, ...profile } = parsed.data;
    return this.#accounts.create({
      sub: randomId(16),
      email: profile.email,
      emailVerified: false,
      passwordHash: await this.#hasher.hash(password),
      name: profile.name,
      givenName: profile.givenName,
      familyName: profile.familyName,
      disabled: false,
    });
  }

  /**
   * Checks an email and password with exactly one argon2id verify, whatever the outcome, and the
   * same error for an unknown email, a wrong password and a disabled account (no enumeration).
   * A hash made with older parameters is upgraded on success.
   */
  async authenticate(emailInput: string, password: string): Promise<Account> {
    const account = typeof emailInput === 'string' && emailInput.length <= 254
      ? await this.#accounts.findByEmail(normalizeEmail(emailInput))
      : undefined;
    const usable = typeof password === 'string' && password.length > 0 && password.length <= PASSWORD_MAX_LENGTH;
    const ok = account && usable
      ? await this.#hasher.verify(account.passwordHash, password)
      : await this.#hasher.verifyDecoy(usable ? password : '');
    if (!account || !ok || account.disabled) {
      throw new AppError('ERR_INVALID_CREDENTIALS', INVALID_CREDENTIALS, { status: 401 });
    }
    if (this.#hasher.needsRehash(account.passwordHash)) {
      await this.#accounts.update(account.sub, { passwordHash: await this.#hasher.hash(password) });
    }
    return account;
  }

  findBySub(sub: string): Promise<Account | undefined> {
    return this.#accounts.findBySub(sub);
  }

  findByEmail(emailInput: string): Promise<Account | undefined> {
    return this.#accounts.findByEmail(normalizeEmail(emailInput));
  }

  list(): Promise<Account[]> {
    return this.#accounts.list();
  }

  /** Returns false when no account has that email. */
  async setDisabled(emailInput: string, disabled: boolean): Promise<boolean> {
    const account = await this.findByEmail(emailInput);
    return account ? this.#accounts.update(account.sub, { disabled }) : false;
  }
}
