/**
 * Second factors of an account: an authenticator app (TOTP), recovery codes, codes by email and
 * passkeys. This is the one API the sign-in pages, the account page and the CLI use to enrol,
 * check and remove them; the pieces live in domain/mfa/.
 *
 * An account "has a second factor" when it has a confirmed authenticator app, a passkey, or codes
 * by email turned on (and mail is configured). Recovery codes are a backup for those, not a factor
 * of their own: they are made with the first factor and dropped with the last.
 *
 * Checks (`verify*`, `useRecoveryCode`) answer true or false and never say why; enrolment and
 * management throw AppError: ERR_SECOND_FACTOR_INVALID (a wrong code or passkey answer, 400),
 * ERR_SECOND_FACTOR_UNAVAILABLE (not possible now, e.g. already set up, 409), ERR_NOT_FOUND.
 * Callers rate-limit checks per account.
 */
import { AppError } from '../errors.ts';
import type { Locale } from '../i18n/locales.ts';
import type { Account, AccountRepository, OidcStore, Passkey } from '../store/port.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import type { Mailer } from './mailer.ts';
import type { PasskeyStorage } from './mfa/assurance.ts';
import { EmailCodes } from './mfa/email-codes.ts';
import { Passkeys, type CeremonyBinding, type PasskeyAuthentication, type PasskeySettings } from './mfa/passkeys.ts';
import { PendingSignIns } from './mfa/pending-sign-ins.ts';
import { hashRecoveryCode, newRecoveryCodes, normalizeRecoveryCode } from './mfa/recovery-codes.ts';
import { formatTotpSecret, matchTotpStep, newTotpSecret, normalizeTotpCode, totpUri } from './mfa/totp.ts';
import { Sealer } from './sealed.ts';

export type { PasskeyAuthentication } from './mfa/passkeys.ts';
export type { PendingSignIn } from './mfa/pending-sign-ins.ts';

export interface SecondFactorSettings {
  /** The issuer URL: passkeys belong to its origin. */
  issuer: string;
  webauthn: { readonly rpId: string | undefined; readonly rpName: string };
  /** Codes by email are offered only when mail really leaves the machine (SMTP_URL). */
  emailCodes: boolean;
  masterSecret: string;
  /** Where enrolments and removals are announced (second_factor.*, passkey.*, recovery_codes.generated). */
  events?: SecurityEvents;
}

export interface TotpEnrolment {
  /** Base32, as authenticator apps take it. */
  secret: string;
  /** The same, in groups of four for reading aloud or typing. */
  formattedSecret: string;
  otpauthUri: string;
  /** A PNG data: URL of the QR code carrying otpauthUri (the CSP allows img-src data:). */
  qrDataUrl: string;
}

export interface PasskeySummary {
  credentialId: string;
  name: string;
  createdAt: Date;
  lastUsedAt?: Date | undefined;
}

export interface SecondFactorSummary {
  /** A confirmed authenticator app. */
  totp: boolean;
  /** An authenticator app whose setup waits for its first code. */
  totpPending: boolean;
  recoveryCodesLeft: number;
  passkeys: PasskeySummary[];
  /** Codes by email are turned on (and mail is configured). */
  emailOtp: boolean;
  /** Codes by email can be turned on at all (SMTP_URL is set). */
  emailOtpAvailable: boolean;
  /** Any second factor: sign-in with a password asks for one. */
  enabled: boolean;
}

/** A password reset offers to remove the second factors and passkeys added this many days before it. */
export const RECENT_FACTOR_DAYS = 7;

/** A second factor or passkey added recently: `id` is `totp` or `passkey:<credential id>`. */
export interface RecentFactor {
  id: string;
  label: string;
  addedAt: Date;
}

const WRONG_CODE = 'That code is not right. Enter the current code from your authenticator app.';

function summaryOf(passkey: Passkey): PasskeySummary {
  return { credentialId: passkey.credentialId, name: passkey.name, createdAt: passkey.createdAt, lastUsedAt: passkey.lastUsedAt };
}

export class SecondFactorService {
  readonly #accounts: AccountRepository;
  readonly #settings: SecondFactorSettings;
  readonly #totpSealer: Sealer;
  readonly #emailCodes: EmailCodes;
  readonly #passkeys: Passkeys;
  readonly #events: SecurityEvents;
  /** Sign-ins waiting for their second factor (used by the interaction pages). */
  readonly pendingSignIns: PendingSignIns;

  constructor(accounts: AccountRepository, oidc: OidcStore, mailer: Mailer, settings: SecondFactorSettings) {
    this.#accounts = accounts;
    this.#settings = settings;
    this.#events = settings.events ?? NO_SECURITY_EVENTS;
    this.#totpSealer = new Sealer(settings.masterSecret, 'totp');
    this.#emailCodes = new EmailCodes(oidc, mailer, settings.webauthn.rpName);
    const issuer = new URL(settings.issuer);
    const passkeySettings: PasskeySettings = { rpId: settings.webauthn.rpId ?? issuer.hostname, rpName: settings.webauthn.rpName, origin: issuer.origin };
    this.#passkeys = new Passkeys(accounts, oidc, passkeySettings);
    this.pendingSignIns = new PendingSignIns(oidc, new Sealer(settings.masterSecret, 'pending sign-in'));
  }

  get emailCodesAvailable(): boolean {
    return this.#settings.emailCodes;
  }

  hasSecondFactor(account: Account): boolean {
    return Boolean(account.totp?.confirmedAt) || account.passkeys.length > 0 || this.#emailOtpOn(account);
  }

  async summary(sub: string): Promise<SecondFactorSummary> {
    const account = await this.#account(sub);
    return {
      totp: Boolean(account.totp?.confirmedAt),
      totpPending: Boolean(account.totp && !account.totp.confirmedAt),
      recoveryCodesLeft: account.recoveryCodes.length,
      passkeys: account.passkeys.map(summaryOf),
      emailOtp: this.#emailOtpOn(account),
      emailOtpAvailable: this.#settings.emailCodes,
      enabled: this.hasSecondFactor(account),
    };
  }

  // --- Authenticator app (TOTP) ---

  /**
   * Starts (or, shown again, continues) setting up an authenticator app: the secret is stored
   * unconfirmed until confirmTotp sees a first code. `restart` makes a new secret.
   */
  async startTotpEnrolment(sub: string, options: { restart?: boolean } = {}): Promise<TotpEnrolment> {
    const account = await this.#account(sub);
    if (account.totp?.confirmedAt) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'An authenticator app is already set up. Remove it first to set up another.');
    }
    let secret: string;
    if (account.totp && !options.restart) {
      secret = this.#totpSealer.open(account.totp.encryptedSecret, sub);
    } else {
      secret = newTotpSecret();
      await this.#accounts.update(sub, { totp: { encryptedSecret: this.#totpSealer.seal(secret, sub), lastStep: 0 } });
    }
    const otpauthUri = totpUri(secret, { issuer: this.#settings.webauthn.rpName, account: account.email });
    // Loaded at the first enrolment, not at startup: most requests never draw a QR code.
    const { default: QRCode } = await import('qrcode');
    const qrDataUrl = await QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
    return { secret, formattedSecret: formatTotpSecret(secret), otpauthUri, qrDataUrl };
  }

  /** Confirms the app with its first code; that code is then used up like any other. */
  async confirmTotp(sub: string, code: unknown): Promise<void> {
    const account = await this.#account(sub);
    if (!account.totp || account.totp.confirmedAt) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'There is no authenticator app waiting to be confirmed. Start again.');
    }
    const secret = this.#totpSealer.open(account.totp.encryptedSecret, sub);
    const normalized = normalizeTotpCode(code);
    const step = normalized ? matchTotpStep(secret, normalized) : undefined;
    if (step === undefined || !await this.#accounts.advanceTotpStep(sub, step)) {
      throw new AppError('ERR_SECOND_FACTOR_INVALID', WRONG_CODE);
    }
    await this.#accounts.update(sub, { totp: { encryptedSecret: account.totp.encryptedSecret, lastStep: step, confirmedAt: new Date() } });
    this.#events.emit({ type: 'second_factor.added', sub, details: { method: 'totp' } });
  }

  /** True for a current code of a confirmed app, once: the same code (or an older one) is refused after. */
  async verifyTotp(sub: string, code: unknown): Promise<boolean> {
    const account = await this.#accounts.findBySub(sub);
    const normalized = normalizeTotpCode(code);
    if (!account?.totp?.confirmedAt || !normalized) return false;
    const step = matchTotpStep(this.#totpSealer.open(account.totp.encryptedSecret, sub), normalized);
    return step !== undefined && await this.#accounts.advanceTotpStep(sub, step);
  }

  async disableTotp(sub: string): Promise<void> {
    const account = await this.#account(sub);
    await this.#accounts.update(sub, { totp: null });
    if (account.totp?.confirmedAt) this.#events.emit({ type: 'second_factor.removed', sub, details: { method: 'totp' } });
    await this.#dropRecoveryCodesIfLast(sub);
  }

  // --- Recovery codes ---

  /** Ten new codes, to show once; the previous ones stop working. */
  async generateRecoveryCodes(sub: string): Promise<string[]> {
    await this.#account(sub);
    const codes = newRecoveryCodes();
    await this.#accounts.update(sub, { recoveryCodes: codes.map((code) => hashRecoveryCode(sub, normalizeRecoveryCode(code)!)) });
    this.#events.emit({ type: 'recovery_codes.generated', sub, details: { count: codes.length } });
    return codes;
  }

  /** True once per code, and only while the account has a second factor the code backs up. */
  async useRecoveryCode(sub: string, code: unknown): Promise<boolean> {
    const normalized = normalizeRecoveryCode(code);
    const account = await this.#accounts.findBySub(sub);
    if (!normalized || !account || !this.hasSecondFactor(account)) return false;
    return this.#accounts.consumeRecoveryCode(sub, hashRecoveryCode(sub, normalized));
  }

  // --- Codes by email ---

  /** Sends a sign-in code to the account's address. */
  async sendEmailCode(sub: string, locale?: Locale): Promise<void> {
    const account = await this.#account(sub);
    if (!this.#emailOtpOn(account)) throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'Codes by email are not turned on for this account.');
    await this.#emailCodes.send(sub, account.email, 'sign-in', locale);
  }

  async verifyEmailCode(sub: string, code: unknown): Promise<boolean> {
    const account = await this.#accounts.findBySub(sub);
    if (!account || !this.#emailOtpOn(account)) return false;
    return this.#emailCodes.verify(sub, code, 'sign-in');
  }

  /** Turning codes by email on proves the mailbox first: a code goes there, confirmEmailOtp takes it. */
  async startEmailOtpEnrolment(sub: string, locale?: Locale): Promise<void> {
    const account = await this.#account(sub);
    this.#assertMailConfigured();
    await this.#emailCodes.send(sub, account.email, 'enrol', locale);
  }

  /** Turns codes by email on; the address is verified by the same token. */
  async confirmEmailOtp(sub: string, code: unknown): Promise<void> {
    await this.#account(sub);
    this.#assertMailConfigured();
    if (!await this.#emailCodes.verify(sub, code, 'enrol')) {
      throw new AppError('ERR_SECOND_FACTOR_INVALID', 'That code is not right, or it expired. Ask for a new one.');
    }
    await this.#accounts.update(sub, { emailOtp: true, emailVerified: true });
    this.#events.emit({ type: 'second_factor.added', sub, details: { method: 'email-code' } });
  }

  /** Turns codes by email on for an address already verified (e.g. from the account page). */
  async enableEmailOtp(sub: string): Promise<void> {
    const account = await this.#account(sub);
    this.#assertMailConfigured();
    if (!account.emailVerified) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'Verify your email address first.');
    }
    await this.#accounts.update(sub, { emailOtp: true });
    this.#events.emit({ type: 'second_factor.added', sub, details: { method: 'email-code' } });
  }

  async disableEmailOtp(sub: string): Promise<void> {
    const account = await this.#account(sub);
    await this.#accounts.update(sub, { emailOtp: false });
    if (account.emailOtp) this.#events.emit({ type: 'second_factor.removed', sub, details: { method: 'email-code' } });
    await this.#dropRecoveryCodesIfLast(sub);
  }

  // --- Passkeys ---

  /** `binding.uid` ties the ceremony to a sign-in in progress; omit it on the account page. */
  async passkeyRegistrationOptions(sub: string, binding: CeremonyBinding = {}) {
    return this.#passkeys.registrationOptions(await this.#account(sub), binding);
  }

  /** `response` is the browser's PublicKeyCredential as JSON text. */
  async verifyPasskeyRegistration(sub: string, response: unknown, name?: unknown, binding: CeremonyBinding = {}): Promise<PasskeySummary & { storage: PasskeyStorage }> {
    const { passkey, storage } = await this.#passkeys.verifyRegistration(await this.#account(sub), response, name, binding);
    this.#events.emit({ type: 'passkey.added', sub, details: { name: passkey.name, storage } });
    return { ...summaryOf(passkey), storage };
  }

  /** With `sub`: a second factor for that account. Without: passwordless, any passkey of this site. */
  async passkeyAuthenticationOptions(sub: string | undefined, binding: CeremonyBinding) {
    const account = sub === undefined ? undefined : await this.#account(sub);
    if (account && !account.passkeys.length) throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'This account has no passkey.');
    return this.#passkeys.authenticationOptions(account, binding);
  }

  /** Throws ERR_SECOND_FACTOR_INVALID unless the answer is a fresh signature by a registered passkey. */
  verifyPasskeyAuthentication(response: unknown, binding: CeremonyBinding): Promise<PasskeyAuthentication> {
    return this.#passkeys.verifyAuthentication(response, binding);
  }

  async removePasskey(sub: string, credentialId: string): Promise<void> {
    const account = await this.#account(sub);
    const remaining = account.passkeys.filter((passkey) => passkey.credentialId !== credentialId);
    if (remaining.length === account.passkeys.length) throw this.#noPasskey();
    await this.#accounts.update(sub, { passkeys: remaining });
    const removed = account.passkeys.find((passkey) => passkey.credentialId === credentialId);
    this.#events.emit({ type: 'passkey.removed', sub, details: { name: removed?.name ?? '' } });
    await this.#dropRecoveryCodesIfLast(sub);
  }

  /**
   * The authenticator app and passkeys added in the last RECENT_FACTOR_DAYS, newest first: what a
   * password reset offers to remove, since someone who had the password could have added them.
   * (Codes by email are not listed: they go to the owner's own mailbox, which the reset link proved.)
   */
  async recentFactors(sub: string, now = new Date()): Promise<RecentFactor[]> {
    const account = await this.#account(sub);
    const since = now.getTime() - RECENT_FACTOR_DAYS * 86_400_000;
    const recent: RecentFactor[] = [];
    if (account.totp?.confirmedAt && account.totp.confirmedAt.getTime() >= since) {
      recent.push({ id: 'totp', label: 'Authenticator app', addedAt: account.totp.confirmedAt });
    }
    for (const passkey of account.passkeys) {
      if (passkey.createdAt.getTime() >= since) recent.push({ id: `passkey:${passkey.credentialId}`, label: `Passkey "${passkey.name}"`, addedAt: passkey.createdAt });
    }
    return recent.sort((a, b) => b.addedAt.getTime() - a.addedAt.getTime());
  }

  /** Removes those of `ids` that are still recent factors (anything else is ignored); returns how many went. */
  async removeRecentFactors(sub: string, ids: readonly string[], now = new Date()): Promise<number> {
    const wanted = new Set(ids);
    let removed = 0;
    for (const factor of await this.recentFactors(sub, now)) {
      if (!wanted.has(factor.id)) continue;
      if (factor.id === 'totp') await this.disableTotp(sub);
      else await this.removePasskey(sub, factor.id.slice('passkey:'.length));
      removed += 1;
    }
    return removed;
  }

  /** Everything off, for an administrator helping someone who lost every factor. */
  async resetAll(sub: string): Promise<void> {
    await this.#account(sub);
    await this.#accounts.update(sub, { totp: null, passkeys: [], emailOtp: false, recoveryCodes: [] });
    this.#events.emit({ type: 'second_factor.removed', sub, details: { method: 'all' } });
  }

  async #account(sub: string): Promise<Account> {
    const account = await this.#accounts.findBySub(sub);
    if (!account) throw new AppError('ERR_NOT_FOUND', 'There is no such account.');
    return account;
  }

  #emailOtpOn(account: Account): boolean {
    return account.emailOtp && this.#settings.emailCodes;
  }

  #assertMailConfigured(): void {
    if (!this.#settings.emailCodes) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'Codes by email need a mail server (SMTP_URL), which is not configured.');
    }
  }

  #noPasskey(): AppError {
    return new AppError('ERR_NOT_FOUND', 'There is no such passkey on this account.');
  }

  async #dropRecoveryCodesIfLast(sub: string): Promise<void> {
    const account = await this.#accounts.findBySub(sub);
    if (account && !this.hasSecondFactor(account) && account.recoveryCodes.length) {
      await this.#accounts.update(sub, { recoveryCodes: [] });
    }
  }
}
