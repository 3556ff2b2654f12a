/**
 * TOTP (RFC 6238) as every authenticator app understands it: HMAC-SHA-1, six digits, 30-second
 * steps, 160-bit secrets. A code is accepted one step either side of now, for clock drift; the step
 * it matched is returned so the caller can refuse it a second time (see AccountRepository.advanceTotpStep).
 */
import * as OTPAuth from 'otpauth';

const PERIOD_SECONDS = 30;
const DIGITS = 6;
/** Steps either side of the current one that still count (RFC 6238 section 5.2 recommends at most one). */
const WINDOW = 1;

export interface TotpLabel {
  issuer: string;
  account: string;
}

export function newTotpSecret(): string {
  return new OTPAuth.Secret({ size: 20 }).base32;
}

function totp(secret: string, label?: TotpLabel): OTPAuth.TOTP {
  return new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: DIGITS,
    period: PERIOD_SECONDS,
    ...(label && { issuer: label.issuer, label: label.account }),
  });
}

/** The otpauth:// URI that QR codes carry (Google Authenticator's key URI format). */
export function totpUri(secret: string, label: TotpLabel): string {
  return totp(secret, label).toString();
}

/** Digits only, whatever spacing people type ("123 456"); anything else is not a code. */
export function normalizeTotpCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 20) return undefined;
  const digits = input.replace(/[\s-]/g, '');
  return new RegExp(`^\\d{${DIGITS}}$`).test(digits) ? digits : undefined;
}

/** The time step the code belongs to, or undefined when it matches none in the window. */
export function matchTotpStep(secret: string, code: string, now = Date.now()): number | undefined {
  const generator = totp(secret);
  const delta = generator.validate({ token: code, timestamp: now, window: WINDOW });
  if (delta === null) return undefined;
  return generator.counter({ timestamp: now }) + delta;
}

/** Groups the base32 key in fours, the way apps show it and people type it. */
export function formatTotpSecret(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}
