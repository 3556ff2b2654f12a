/**
 * The one rule for email addresses: what counts as the same mailbox, and what is refused outright.
 * Registration (pages, API, admin API, CLI), sign-in, recovery, rate-limit keys and (later) imports
 * and upstream identities all reduce an address through here, so two spellings of one mailbox can
 * never become two accounts, and an address that only looks like another is refused.
 *
 * The canonical form:
 * 1. surrounding whitespace trimmed, then Unicode NFKC, which folds compatibility forms such as
 *    fullwidth `ａ` into `a`;
 * 2. no control or format characters anywhere (Unicode Cc and Cf: NUL, zero-width spaces and
 *    joiners, bidi overrides, soft hyphen, BOM) and no whitespace inside: refused, not stripped, since
 *    an address that needs them is a disguise;
 * 3. exactly one `@`, a local part of at most 64 octets, at most 254 octets in all;
 * 4. the domain lowercased and put through IDNA (UTS #46, node's `domainToASCII`), kept in its
 *    Unicode form so people recognise it, with one trailing dot (the DNS root) removed; it needs a dot,
 *    and each label is letters, digits and inner hyphens;
 * 5. no RFC 5322 special in the local part (`"`, `(`, `)`, `,`, `:`, `;`, `<`, `>`, `[`, `]`, `\`): refused,
 *    since they spell quoted strings, comments and escapes, and `"ada"@example.com` or
 *    `ada(note)@example.com` is the mailbox of `ada@example.com` (RFC 5321 section 4.1.2), while
 *    HTML's own address syntax has none of them;
 * 6. the local part lowercased too. RFC 5321 lets a server treat it case-sensitively, but no mailbox
 *    provider people use does, and most identity providers compare it case-insensitively; dots and
 *    `+tags` are kept, since their meaning is the provider's.
 */
import { domainToASCII, domainToUnicode } from 'node:url';

export type EmailRefusal = 'ERR_EMAIL_EMPTY' | 'ERR_EMAIL_HIDDEN_CHARACTER' | 'ERR_EMAIL_FORMAT' | 'ERR_EMAIL_TOO_LONG' | 'ERR_EMAIL_DOMAIN';

export type NormalisedEmail = { ok: true; email: string } | { ok: false; code: EmailRefusal; message: string };

const MESSAGES: Record<EmailRefusal, string> = {
  ERR_EMAIL_EMPTY: 'Enter an email address',
  ERR_EMAIL_HIDDEN_CHARACTER: 'Email addresses cannot contain invisible or control characters',
  ERR_EMAIL_FORMAT: 'Enter a valid email address',
  ERR_EMAIL_TOO_LONG: 'Email is too long',
  ERR_EMAIL_DOMAIN: 'The part after @ is not a valid domain name',
};

const HIDDEN = /[\p{Cc}\p{Cf}]/u;
/** Letters, digits and inner hyphens (RFC 1123), on the A-label form: no `_`, no empty label. */
const HOSTNAME_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const WHITESPACE = /[\s\p{Zs}\p{Zl}\p{Zp}]/u;
/** RFC 5322 specials: a local part with one is another spelling of a plainer one, or a header's syntax. */
const LOCAL_PART_SPECIAL = /["(),:;<>[\]\\]/;

function refuse(code: EmailRefusal): NormalisedEmail {
  return { ok: false, code, message: MESSAGES[code] };
}

/** The canonical form of an address, or why it is refused. Pure; safe on any string. */
export function normaliseEmail(input: string): NormalisedEmail {
  const text = input.trim().normalize('NFKC');
  if (!text) return refuse('ERR_EMAIL_EMPTY');
  if (HIDDEN.test(text)) return refuse('ERR_EMAIL_HIDDEN_CHARACTER');
  if (WHITESPACE.test(text)) return refuse('ERR_EMAIL_FORMAT');
  const at = text.indexOf('@');
  if (at <= 0 || at !== text.lastIndexOf('@') || at === text.length - 1) return refuse('ERR_EMAIL_FORMAT');
  const local = text.slice(0, at).toLowerCase();
  if (LOCAL_PART_SPECIAL.test(local)) return refuse('ERR_EMAIL_FORMAT');
  const rawDomain = text.slice(at + 1).replace(/\.$/, '');
  if (!rawDomain.includes('.') || rawDomain.split('.').some((label) => !label)) return refuse('ERR_EMAIL_DOMAIN');
  const ascii = domainToASCII(rawDomain.toLowerCase());
  if (!ascii || !ascii.split('.').every((part) => HOSTNAME_LABEL.test(part))) return refuse('ERR_EMAIL_DOMAIN');
  const domain = domainToUnicode(ascii);
  const email = `${local}@${domain}`;
  if (Buffer.byteLength(local) > 64 || Buffer.byteLength(email) > 254) return refuse('ERR_EMAIL_TOO_LONG');
  return { ok: true, email };
}

/**
 * The key an address is looked up by (sign-in, recovery, CLI, rate limits). A refused address falls
 * back to the old reduction (trim, NFC, lower case): nothing new can be created in that form, but an
 * account stored before this rule stays reachable by exactly its own spelling.
 */
export function emailLookupKey(input: string): string {
  const normalised = normaliseEmail(input);
  return normalised.ok ? normalised.email : input.trim().normalize('NFC').toLowerCase();
}
