/**
 * The messages Tessera sends about an account: plain text, with a simple HTML alternative, in the
 * language of the page that caused them (registration, a reset request, a code asked for), else
 * English. They carry links, never a password, and say what to do if the person did not ask for them.
 * The words are in the catalogs (`mail.*`, locales/<tag>.json).
 */
import { translator, type Translator } from '../i18n/catalogs.ts';
import type { Locale } from '../i18n/locales.ts';
import { MAIL_ACCENT, type MailMessage } from './mailer.ts';

function escapeHtml(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

/** "30 minutes", "24 Stunden": how long a link lasts, in words of the locale. */
export function describeDuration(seconds: number, locale: Locale = 'en'): string {
  const { t } = translator(locale);
  if (seconds % 86_400 === 0 && seconds > 86_400) return t('duration.day', { count: seconds / 86_400 });
  if (seconds % 3600 === 0 && seconds >= 3600) return t('duration.hour', { count: seconds / 3600 });
  if (seconds >= 60) return t('duration.minute', { count: Math.round(seconds / 60) });
  return t('duration.second', { count: seconds });
}

interface Paragraphs {
  to: string;
  subject: string;
  /** Paragraphs of text; a `{ link }` paragraph becomes a button in HTML and a bare URL in text. */
  body: Array<string | { link: string; label: string }>;
}

function compose(i18n: Translator, { to, subject, body }: Paragraphs): MailMessage {
  const text = body.map((part) => (typeof part === 'string' ? part : `${part.label}:\n${part.link}`)).join('\n\n');
  const html = [
    `<!DOCTYPE html><html lang="${i18n.locale}"><body style="font-family: system-ui, sans-serif; line-height: 1.5; color: #1a1a1a; max-width: 36em">`,
    ...body.map((part) => (typeof part === 'string'
      ? `<p>${escapeHtml(part)}</p>`
      : `<p><a href="${escapeHtml(part.link)}" style="display: inline-block; padding: .6em 1.2em; background: ${MAIL_ACCENT}; color: #fff; text-decoration: none; border-radius: .3em">${escapeHtml(part.label)}</a></p><p style="font-size: .9em; color: #555">${escapeHtml(i18n.t('mail.orOpen', { link: part.link }))}</p>`)),
    '</body></html>',
  ].join('\n');
  return { to, subject, text: `${text}\n`, html };
}

export function verificationMessage(to: string, link: string, ttlSeconds: number, locale: Locale = 'en'): MailMessage {
  const i18n = translator(locale);
  const { t } = i18n;
  return compose(i18n, {
    to,
    subject: t('mail.verify.subject'),
    body: [
      t('mail.hello'),
      t('mail.verify.body', { email: to, ttl: describeDuration(ttlSeconds, locale) }),
      { link, label: t('mail.verify.button') },
      t('mail.verify.ignore'),
    ],
  });
}

export function passwordResetMessage(to: string, link: string, ttlSeconds: number, locale: Locale = 'en'): MailMessage {
  const i18n = translator(locale);
  const { t } = i18n;
  return compose(i18n, {
    to,
    subject: t('mail.reset.subject'),
    body: [
      t('mail.hello'),
      t('mail.reset.body', { email: to, ttl: describeDuration(ttlSeconds, locale) }),
      { link, label: t('mail.reset.button') },
      t('mail.reset.ignore'),
    ],
  });
}

/** A six-digit code by email: to turn codes by email on, or to finish a sign-in. */
export function emailCodeMessage(to: string, code: string, service: string, purpose: 'enrol' | 'sign-in', ttlSeconds: number, locale: Locale = 'en'): MailMessage {
  const { t } = translator(locale);
  const ttl = describeDuration(ttlSeconds, locale);
  return {
    to,
    subject: t('mail.code.subject', { code, service }),
    text: [
      t('mail.code.body', { code, service }),
      '',
      purpose === 'enrol' ? t('mail.code.enrol', { ttl }) : t('mail.code.signIn', { ttl }),
      '',
      t('mail.code.ignore'),
    ].join('\n'),
  };
}

export function lockoutMessage(to: string, lockedUntil: Date, failures: number, resetLink: string, locale: Locale = 'en'): MailMessage {
  const i18n = translator(locale);
  const { t } = i18n;
  return compose(i18n, {
    to,
    subject: t('mail.lockout.subject'),
    body: [
      t('mail.hello'),
      t('mail.lockout.body', { failures, email: to, until: formatMailTime(lockedUntil, locale) }),
      t('mail.lockout.wait'),
      { link: resetLink, label: t('mail.reset.button') },
      t('mail.lockout.notYou'),
    ],
  });
}

/** A point in time in a mail: the locale's format, in UTC, said so (the reader's zone is unknown). */
function formatMailTime(date: Date, locale: Locale): string {
  const time = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'long', timeZone: 'UTC' }).format(date);
  return time;
}

/** A factor, in words, as the factor notices (factor-notices.ts) name it. */
export type FactorInWords = { kind: 'passkey'; name?: string } | { kind: 'totp' | 'email-code' | 'all' | 'other' };

/**
 * Tells the owner a second factor or passkey was added or removed: with the password alone a thief
 * could otherwise add a passkey of their own and keep it, unseen, after the owner resets the password.
 */
export function factorChangedMessage(to: string, change: { added: boolean; what: FactorInWords; at: Date }, resetLink: string, locale: Locale = 'en'): MailMessage {
  const i18n = translator(locale);
  const { t } = i18n;
  const what = change.what.kind === 'passkey'
    ? (change.what.name ? t('mail.factor.whatPasskeyNamed', { name: change.what.name }) : t('mail.factor.whatPasskey'))
    : t(`mail.factor.what.${change.what.kind}`);
  return compose(i18n, {
    to,
    subject: change.added ? t('mail.factor.addedSubject') : t('mail.factor.removedSubject'),
    body: [
      t('mail.hello'),
      t(change.added ? 'mail.factor.addedBody' : 'mail.factor.removedBody', { what, email: to, at: formatMailTime(change.at, locale) }),
      t('mail.factor.ifYou'),
      change.added ? t('mail.factor.notYouAdded') : t('mail.factor.notYouRemoved'),
      { link: resetLink, label: t('mail.reset.button') },
    ],
  });
}
