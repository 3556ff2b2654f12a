/**
 * The messages Tessera sends about an account: plain text, with a simple HTML alternative. They
 * carry links, never a password, and say what to do if the person did not ask for them.
 */
import type { MailMessage } from './mailer.ts';

function escapeHtml(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

/** "30 minutes", "24 hours": how long a link lasts, in words. */
export function describeDuration(seconds: number): string {
  if (seconds % 86_400 === 0 && seconds > 86_400) return plural(seconds / 86_400, 'day');
  if (seconds % 3600 === 0 && seconds >= 3600) return plural(seconds / 3600, 'hour');
  if (seconds >= 60) return plural(Math.round(seconds / 60), 'minute');
  return plural(seconds, 'second');
}

function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

interface Paragraphs {
  to: string;
  subject: string;
  /** Paragraphs of text; a `{ link }` paragraph becomes a button in HTML and a bare URL in text. */
  body: Array<string | { link: string; label: string }>;
}

function compose({ to, subject, body }: Paragraphs): MailMessage {
  const text = body.map((part) => (typeof part === 'string' ? part : `${part.label}:\n${part.link}`)).join('\n\n');
  const html = [
    '<!DOCTYPE html><html><body style="font-family: system-ui, sans-serif; line-height: 1.5; color: #1a1a1a; max-width: 36em">',
    ...body.map((part) => (typeof part === 'string'
      ? `<p>${escapeHtml(part)}</p>`
      : `<p><a href="${escapeHtml(part.link)}" style="display: inline-block; padding: .6em 1.2em; background: #1f4fd1; color: #fff; text-decoration: none; border-radius: .3em">${escapeHtml(part.label)}</a></p><p style="font-size: .9em; color: #555">Or open this address: ${escapeHtml(part.link)}</p>`)),
    '</body></html>',
  ].join('\n');
  return { to, subject, text: `${text}\n`, html };
}

export function verificationMessage(to: string, link: string, ttlSeconds: number): MailMessage {
  return compose({
    to,
    subject: 'Confirm your email address',
    body: [
      'Hello,',
      `Please confirm that ${to} is your email address. The link works once, for ${describeDuration(ttlSeconds)}.`,
      { link, label: 'Confirm my email address' },
      'If you did not create an account, you can ignore this message.',
    ],
  });
}

export function passwordResetMessage(to: string, link: string, ttlSeconds: number): MailMessage {
  return compose({
    to,
    subject: 'Reset your password',
    body: [
      'Hello,',
      `Someone (hopefully you) asked to reset the password of the account ${to}. The link works once, for ${describeDuration(ttlSeconds)}.`,
      { link, label: 'Choose a new password' },
      'Choosing a new password signs you out everywhere. If you did not ask for this, ignore this message: your password stays as it is.',
    ],
  });
}

export function lockoutMessage(to: string, lockedUntil: Date, failures: number, resetLink: string): MailMessage {
  return compose({
    to,
    subject: 'Your account was locked after failed sign-ins',
    body: [
      'Hello,',
      `After ${failures} failed attempts to sign in to the account ${to}, signing in is blocked until ${lockedUntil.toUTCString()}.`,
      'If it was you, wait until then, or choose a new password now; that also lifts the lock.',
      { link: resetLink, label: 'Choose a new password' },
      'If it was not you, someone may be trying to guess your password. Your account is safe while it is locked; a long password used nowhere else keeps it that way.',
    ],
  });
}

/**
 * Tells the owner a second factor or passkey was added or removed: with the password alone a thief
 * could otherwise add a passkey of their own and keep it, unseen, after the owner resets the password.
 */
export function factorChangedMessage(to: string, change: { added: boolean; what: string; at: Date }, resetLink: string): MailMessage {
  return compose({
    to,
    subject: change.added ? 'A sign-in method was added to your account' : 'A sign-in method was removed from your account',
    body: [
      'Hello,',
      `${change.what} was ${change.added ? 'added to' : 'removed from'} the account ${to} on ${change.at.toUTCString()}.`,
      'If this was you, there is nothing to do.',
      change.added
        ? 'If it was not you, someone knows your password. Choose a new password now: the page lets you remove the sign-in methods added in the last 7 days, and it signs everyone out.'
        : 'If it was not you, someone knows your password. Choose a new password now; that signs everyone out.',
      { link: resetLink, label: 'Choose a new password' },
    ],
  });
}
