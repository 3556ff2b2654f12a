/**
 * Six-digit codes sent by email: valid ten minutes, used once, and at most five guesses per code.
 * The pending code is a record in the store keyed by account, read with `take`: only one request
 * at a time can hold it, so concurrent guesses cannot exceed the limit, and a right guess removes it.
 * A new code replaces the previous one.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';

import type { Locale } from '../../i18n/locales.ts';
import type { OidcStore } from '../../store/port.ts';
import { emailCodeMessage } from '../account-mail.ts';
import type { Mailer } from '../mailer.ts';
import { normalizeTotpCode } from './totp.ts';

const MODEL = 'EmailCode';
export const EMAIL_CODE_TTL_SECONDS = 600;
export const EMAIL_CODE_MAX_ATTEMPTS = 5;

export type EmailCodePurpose = 'sign-in' | 'enrol';

interface StoredCode {
  [key: string]: unknown;
  digest: string;
  purpose: EmailCodePurpose;
  attempts: number;
  /** Epoch seconds; a failed guess puts the record back for the rest of its life, not a fresh one. */
  expiresAt: number;
}

function digest(sub: string, code: string): string {
  return createHash('sha256').update(`tessera email code\0${sub}\0${code}`).digest('base64url');
}

export class EmailCodes {
  readonly #oidc: OidcStore;
  readonly #mailer: Mailer;
  readonly #serviceName: string;

  constructor(oidc: OidcStore, mailer: Mailer, serviceName: string) {
    this.#oidc = oidc;
    this.#mailer = mailer;
    this.#serviceName = serviceName;
  }

  async send(sub: string, email: string, purpose: EmailCodePurpose, locale?: Locale): Promise<void> {
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const record: StoredCode = { digest: digest(sub, code), purpose, attempts: 0, expiresAt: Math.floor(Date.now() / 1000) + EMAIL_CODE_TTL_SECONDS };
    await this.#oidc.upsert(MODEL, sub, record, EMAIL_CODE_TTL_SECONDS);
    await this.#mailer.send(emailCodeMessage(email, code, this.#serviceName, purpose, EMAIL_CODE_TTL_SECONDS, locale));
  }

  /** True once for the right code; a wrong guess uses up one of the code's attempts. */
  async verify(sub: string, input: unknown, purpose: EmailCodePurpose): Promise<boolean> {
    // Typed like an authenticator's code: six digits, spaces and dashes allowed.
    const code = normalizeTotpCode(input);
    if (!code) return false;
    const stored = await this.#oidc.take(MODEL, sub) as StoredCode | undefined;
    if (!stored || stored.purpose !== purpose) {
      if (stored) await this.#putBack(sub, stored);
      return false;
    }
    const expected = Buffer.from(stored.digest);
    const actual = Buffer.from(digest(sub, code));
    if (expected.length === actual.length && timingSafeEqual(expected, actual)) return true;
    await this.#putBack(sub, { ...stored, attempts: stored.attempts + 1 });
    return false;
  }

  async #putBack(sub: string, record: StoredCode): Promise<void> {
    const remaining = record.expiresAt - Math.floor(Date.now() / 1000);
    if (record.attempts >= EMAIL_CODE_MAX_ATTEMPTS || remaining < 1) return;
    await this.#oidc.upsert(MODEL, sub, record, remaining);
  }
}
