/**
 * Importing accounts from another system, and exporting them in the same format. Nothing is
 * hashed here: an imported hash stays as it came until the person's first sign-in turns it into
 * argon2id (AccountService.authenticate), so 100,000 records take seconds, not hours.
 *
 * Safe to run twice: a record is matched to an account by external id, else by email. An account
 * made here by hand is never touched; one an import made is updated only while its fields are
 * still those the import wrote (its `importDigest` is the digest of them), so a change the person
 * or an operator made since wins, and the record is reported as skipped.
 * Safe to stop: records are written in batches, each account whole (store/port.ts importAccounts),
 * so a killed import leaves accounts complete or absent, and a re-run finishes the job.
 */
import { createHash } from 'node:crypto';

import type { Account, AccountImportWrite, AccountRepository, ImportedAccountFields } from '../store/port.ts';
import { registrationSchema } from './accounts.ts';
import { exportedHashOf, storedHashOf, WEAK_FAMILIES, type HashFamily, type SaltPosition } from './imported-hashes.ts';
import type { RawRecord } from './import-formats.ts';
import { randomId } from './random.ts';
import { MAX_ROLES, roleProblem } from './roles.ts';

/** Records read and written per store transaction: one commit per batch is what makes an import fast. */
export const IMPORT_BATCH = 500;

export const IMPORT_FIELDS = ['email', 'name', 'given_name', 'family_name', 'email_verified', 'roles', 'created_at', 'external_id', 'password_hash', 'password_salt', 'password_salt_position'] as const;
const KNOWN_FIELDS = new Set<string>(IMPORT_FIELDS);
const MAX_NAME = 100;
const MAX_EXTERNAL_ID = 255;
const MAX_HASH = 1024;
const MAX_SALT = 256;

export interface ImportOptions {
  dryRun?: boolean;
  allowWeakHashes?: boolean;
  /** Called after each batch, for a progress bar. */
  onProgress?: (progress: { done: number; total: number }) => void;
}

export interface ImportReport {
  dry_run: boolean;
  imported: number;
  updated: number;
  skipped: number;
  errors: Array<{ line: number; reason: string }>;
  /** Why each skipped record was skipped. */
  skipped_records: Array<{ line: number; email: string; reason: string }>;
  /** Records taken with a weak hash, a legacy digest or md5-crypt (--allow-weak-hashes). */
  weak_hashes: Array<{ line: number; email: string; algorithm: string }>;
  /** What a mapping could not carry over (e.g. a Firebase hash). */
  notes: Array<{ line: number; note: string }>;
  /** Emails of the accounts imported without a password (they sign in through a set-password link or an upstream). */
  without_password: string[];
}

interface CheckedRecord {
  line: number;
  fields: ImportedAccountFields;
  createdAt: Date;
  family?: HashFamily;
}

/** The digest of what an import writes: the same whether computed from a record or read back from the account. */
export function importDigestOf(fields: Omit<ImportedAccountFields, 'importDigest'>): string {
  const canonical = [
    fields.email, fields.emailVerified, fields.passwordHash ?? null, [...fields.roles].sort(),
    fields.name ?? null, fields.givenName ?? null, fields.familyName ?? null, fields.externalId ?? null,
  ];
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}

function digestOfAccount(account: Account): string {
  return importDigestOf({
    email: account.email, emailVerified: account.emailVerified, passwordHash: account.passwordHash, roles: account.roles,
    name: account.name, givenName: account.givenName, familyName: account.familyName, externalId: account.externalId,
  });
}

const emailRule = registrationSchema.shape.email;

function optionalText(fields: Record<string, unknown>, name: string, max: number, problems: string[]): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    problems.push(`${name} must be a string`);
    return undefined;
  }
  if (value.length > max) problems.push(`${name} is longer than ${max} characters`);
  return value.trim() || undefined;
}

/** Checks one record; a string is the reason it is refused. */
export function checkRecord(record: RawRecord, options: { allowWeakHashes?: boolean }): CheckedRecord | string {
  if (typeof record.fields === 'string') return record.fields;
  const fields = record.fields;
  const unknown = Object.keys(fields).filter((name) => !KNOWN_FIELDS.has(name));
  if (unknown.length) return `unknown field ${unknown.map((name) => JSON.stringify(name)).join(', ')}`;
  if (typeof fields.email !== 'string') return 'email is missing';
  const email = emailRule.safeParse(fields.email);
  if (!email.success) return `invalid email: ${email.error.issues[0]?.message ?? 'not an email address'}`;
  const problems: string[] = [];
  const name = optionalText(fields, 'name', MAX_NAME, problems);
  const givenName = optionalText(fields, 'given_name', MAX_NAME, problems);
  const familyName = optionalText(fields, 'family_name', MAX_NAME, problems);
  const externalId = optionalText(fields, 'external_id', MAX_EXTERNAL_ID, problems);
  const verified = fields.email_verified ?? false;
  if (typeof verified !== 'boolean') problems.push('email_verified must be true or false');
  const roles = fields.roles ?? [];
  if (!Array.isArray(roles) || roles.some((role) => typeof role !== 'string')) problems.push('roles must be an array of strings');
  else {
    if (roles.length > MAX_ROLES) problems.push(`an account holds at most ${MAX_ROLES} roles`);
    for (const role of roles as string[]) {
      const problem = roleProblem(role);
      if (problem) problems.push(problem);
    }
  }
  let createdAt = new Date();
  if (fields.created_at !== undefined) {
    createdAt = new Date(typeof fields.created_at === 'number' || typeof fields.created_at === 'string' ? fields.created_at : Number.NaN);
    if (Number.isNaN(createdAt.getTime())) problems.push('created_at must be an ISO 8601 date');
  }
  let passwordHash: string | undefined;
  let family: HashFamily | undefined;
  const hash = optionalText(fields, 'password_hash', MAX_HASH, problems);
  const salt = fields.password_salt;
  const position = fields.password_salt_position;
  if (salt !== undefined && (typeof salt !== 'string' || salt.length > MAX_SALT)) problems.push(`password_salt must be a string of at most ${MAX_SALT} characters`);
  if (position !== undefined && position !== 'prefix' && position !== 'suffix') problems.push('password_salt_position must be prefix or suffix');
  if (hash !== undefined && !problems.length) {
    const stored = storedHashOf({ hash, salt: salt as string | undefined, saltPosition: position as SaltPosition | undefined });
    if (typeof stored === 'string') problems.push(stored);
    else if (WEAK_FAMILIES.has(stored.family) && !options.allowWeakHashes) problems.push(`${stored.family} is a weak hash: import it only with --allow-weak-hashes`);
    else {
      passwordHash = stored.hash;
      family = stored.family;
    }
  } else if (hash === undefined && (salt !== undefined || position !== undefined)) problems.push('password_salt without a password_hash');
  if (problems.length) return problems.join('; ');
  const written = {
    email: email.data,
    emailVerified: verified as boolean,
    ...(passwordHash !== undefined && { passwordHash }),
    roles: [...new Set(roles as string[])],
    ...(name !== undefined && { name }),
    ...(givenName !== undefined && { givenName }),
    ...(familyName !== undefined && { familyName }),
    ...(externalId !== undefined && { externalId }),
  };
  return { line: record.line, fields: { ...written, importDigest: importDigestOf(written) }, createdAt, ...(family && { family }) };
}

type Decision = { write: AccountImportWrite } | { skip: string } | { error: string };

async function decide(accounts: AccountRepository, record: CheckedRecord): Promise<Decision> {
  const { fields } = record;
  const byExternalId = fields.externalId !== undefined ? await accounts.findByExternalId(fields.externalId) : undefined;
  const byEmail = await accounts.findByEmail(fields.email);
  if (byExternalId && byEmail && byExternalId.sub !== byEmail.sub) return { error: `the email belongs to another account than external_id ${fields.externalId}` };
  const existing = byExternalId ?? byEmail;
  if (!existing) return { write: { kind: 'create', sub: randomId(16), createdAt: record.createdAt, fields } };
  if (existing.importDigest === undefined) return { skip: 'an account with this email exists and was not imported: left as it is' };
  if (existing.externalId !== undefined && fields.externalId !== undefined && existing.externalId !== fields.externalId) {
    return { error: `the email belongs to the account imported with external_id ${existing.externalId}` };
  }
  if (digestOfAccount(existing) !== existing.importDigest) return { skip: 'changed since it was imported (a sign-in, a new password or an edit): left as it is' };
  if (existing.importDigest === fields.importDigest) return { skip: 'already imported, unchanged' };
  return { write: { kind: 'update', sub: existing.sub, expectedUpdatedAt: existing.updatedAt, fields } };
}

export class UserImport {
  readonly #accounts: AccountRepository;

  constructor(accounts: AccountRepository) {
    this.#accounts = accounts;
  }

  async import(records: readonly RawRecord[], options: ImportOptions = {}): Promise<ImportReport> {
    const report: ImportReport = {
      dry_run: Boolean(options.dryRun), imported: 0, updated: 0, skipped: 0, errors: [], skipped_records: [], weak_hashes: [], notes: [], without_password: [],
    };
    // Duplicates within the file: the first occurrence is the one imported, every later one an error.
    const seenEmails = new Map<string, number>();
    const seenExternalIds = new Map<string, number>();
    for (let start = 0; start < records.length; start += IMPORT_BATCH) {
      const batch: Array<{ record: CheckedRecord; write: AccountImportWrite }> = [];
      for (const raw of records.slice(start, start + IMPORT_BATCH)) {
        if (raw.note) report.notes.push({ line: raw.line, note: raw.note });
        const record = checkRecord(raw, options);
        if (typeof record === 'string') {
          report.errors.push({ line: raw.line, reason: record });
          continue;
        }
        const { email, externalId } = record.fields;
        const duplicate = seenEmails.get(email) ?? (externalId !== undefined ? seenExternalIds.get(externalId) : undefined);
        if (duplicate !== undefined) {
          report.errors.push({ line: raw.line, reason: `duplicate of line ${duplicate} (same ${seenEmails.has(email) ? 'email' : 'external_id'})` });
          continue;
        }
        seenEmails.set(email, raw.line);
        if (externalId !== undefined) seenExternalIds.set(externalId, raw.line);
        const decision = await decide(this.#accounts, record);
        if ('error' in decision) report.errors.push({ line: raw.line, reason: decision.error });
        else if ('skip' in decision) {
          report.skipped += 1;
          report.skipped_records.push({ line: raw.line, email, reason: decision.skip });
        } else batch.push({ record, write: decision.write });
      }
      const written = options.dryRun ? batch.map(() => true) : await this.#accounts.importAccounts(batch.map((entry) => entry.write));
      for (const [index, { record, write }] of batch.entries()) {
        if (!written[index]) {
          report.skipped += 1;
          report.skipped_records.push({ line: record.line, email: record.fields.email, reason: 'changed or taken while the import ran: left as it is' });
          continue;
        }
        if (write.kind === 'create') report.imported += 1;
        else report.updated += 1;
        if (record.family && WEAK_FAMILIES.has(record.family)) report.weak_hashes.push({ line: record.line, email: record.fields.email, algorithm: record.family });
        if (record.fields.passwordHash === undefined) report.without_password.push(record.fields.email);
      }
      options.onProgress?.({ done: Math.min(start + IMPORT_BATCH, records.length), total: records.length });
    }
    return report;
  }

  /** Every account in the import format; hashes only when asked (and then the caller keeps the file to its owner). */
  async *export(options: { withHashes?: boolean } = {}): AsyncGenerator<Record<string, unknown>> {
    for (let offset = 0; ; offset += IMPORT_BATCH) {
      const page = await this.#accounts.list({ offset, limit: IMPORT_BATCH });
      for (const account of page) yield exportRecord(account, Boolean(options.withHashes));
      if (page.length < IMPORT_BATCH) return;
    }
  }
}

export function exportRecord(account: Account, withHashes: boolean): Record<string, unknown> {
  return {
    email: account.email,
    ...(account.name !== undefined && { name: account.name }),
    ...(account.givenName !== undefined && { given_name: account.givenName }),
    ...(account.familyName !== undefined && { family_name: account.familyName }),
    email_verified: account.emailVerified,
    roles: account.roles,
    created_at: account.createdAt.toISOString(),
    ...(account.externalId !== undefined && { external_id: account.externalId }),
    ...(withHashes && account.passwordHash && exportedHashOf(account.passwordHash)),
  };
}

/** One CSV line of an exported record (roles `;`-separated), quoting what needs it. */
export function csvLine(values: readonly unknown[]): string {
  return values.map((value) => {
    const text = Array.isArray(value) ? value.join(';') : value === undefined ? '' : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  }).join(',');
}

