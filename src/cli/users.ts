/**
 * `tessera users ...`: accounts. Passwords come from stdin only: an argument would sit in shell
 * history and in every `ps` listing.
 */
import { closeSync, constants, fchmodSync, openSync, readFileSync, writeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

import { accountView, identityView } from '../admin/views.ts';
import { normalizeEmail } from '../domain/accounts.ts';
import { formatOfFile, IMPORT_FORMATS, parseImportFile, type ImportFormat } from '../domain/import-formats.ts';
import { csvLine, IMPORT_FIELDS, type ImportReport } from '../domain/user-import.ts';
import { AppError, isAppError } from '../errors.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, printTable } from './output.ts';
import { readSecretFromStdin } from './stdin.ts';

const create = defineCommand({
  summary: 'Create a user; the password is read from stdin',
  description: [
    'Create a user. The password is read from stdin (one trailing newline is removed), e.g.',
    '  printf %s "$PASSWORD" | tessera users create --email ada@example.com --password-stdin',
  ].join('\n'),
  options: {
    email: { type: 'string', required: true, placeholder: 'EMAIL', description: 'Sign-in email address (must be unused)' },
    'password-stdin': { type: 'boolean', description: 'Read the password from stdin (required: passwords are never taken as arguments)' },
    name: { type: 'string', placeholder: 'NAME', description: 'Full name (the `name` claim)' },
    'given-name': { type: 'string', placeholder: 'NAME', description: 'Given name (the `given_name` claim)' },
    'family-name': { type: 'string', placeholder: 'NAME', description: 'Family name (the `family_name` claim)' },
    json: JSON_OPTION,
  },
  async run({ values, services }) {
    if (!values['password-stdin']) {
      throw new UsageError('"users create" needs --password-stdin: passwords are read from stdin, never from arguments', 'users create');
    }
    const password = await readSecretFromStdin('password');
    const { accounts } = await services();
    const account = await accounts
      .register({ email: values.email, password, name: values.name, givenName: values['given-name'], familyName: values['family-name'] })
      .catch((error: unknown) => {
        if (isAppError(error, 'ERR_EMAIL_TAKEN')) {
          throw new AppError('ERR_EMAIL_TAKEN', `a user with the email ${normalizeEmail(values.email)} already exists`, { cause: error });
        }
        throw error;
      });
    if (values.json) return printJson({ sub: account.sub });
    printLines(`Created user ${account.email} (sub ${account.sub}).`);
  },
});

const list = defineCommand({
  summary: 'List users (password hashes are never shown)',
  options: { json: JSON_OPTION },
  async run({ values, services }) {
    const { accounts, identities } = await services();
    const users = await Promise.all((await accounts.list()).map(async (account) => ({
      ...accountView(account),
      identities: (await identities.list(account.sub)).map(identityView),
    })));
    if (values.json) return printJson(users);
    if (!users.length) return printLines('No users yet. Create one with "tessera users create".');
    printTable(
      ['EMAIL', 'SUB', 'STATUS', 'ROLES', 'IDENTITIES', 'NAME', 'CREATED'],
      users.map((user) => [
        user.email, user.sub, user.disabled ? 'disabled' : user.locked_until ? 'locked' : 'active', user.roles.join(',') || '-',
        user.identities.map((identity) => `${identity.upstream}:${identity.subject}`).join(',') || '-', user.name ?? '', user.created_at,
      ]),
    );
  },
});

/** How long `users disable` waits for the apps' back-channel logout endpoints before it exits. */
const LOGOUT_WAIT_MS = 15_000;

function setDisabledCommand(disabled: boolean) {
  return defineCommand({
    summary: disabled ? 'Stop a user from signing in' : 'Let a disabled user sign in again',
    args: [{ name: 'EMAIL', description: 'The user\'s email address' }],
    options: { json: JSON_OPTION },
    async run({ values, args: [email = ''], services }) {
      const { accounts, endAllSessions, backchannelLogout } = await services();
      if (!(await accounts.setDisabled(email, disabled))) {
        throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`);
      }
      const account = await accounts.findByEmail(email);
      // A disabled user is signed out everywhere, and the apps they were signed in to hear of it
      // (back-channel logout): this process sends the tokens, so it waits for them, up to a bound.
      const sessionsEnded = disabled && account ? await endAllSessions(account.sub) : 0;
      const delivered = await Promise.race([backchannelLogout.idle().then(() => true), delay(LOGOUT_WAIT_MS, false, { ref: false })]);
      if (!delivered) backchannelLogout.stop();
      if (values.json) return printJson({ sub: account?.sub, email: account?.email, disabled, ...(disabled && { sessions_ended: sessionsEnded }) });
      printLines(
        disabled ? `Disabled ${account?.email ?? email}: they can no longer sign in.` : `Enabled ${account?.email ?? email}.`,
        ...(sessionsEnded ? [`Signed out of ${sessionsEnded} session${sessionsEnded === 1 ? '' : 's'}.`] : []),
        ...(delivered ? [] : ['Some apps could not be told of the sign-out (back-channel logout); see the log.']),
      );
    },
  });
}

const unlock = defineCommand({
  summary: 'Lift a lockout after failed sign-ins',
  description: 'Lift the lockout of a user locked after repeated failed sign-ins, and start their count of failures over.',
  args: [{ name: 'EMAIL', description: 'The user\'s email address' }],
  options: { json: JSON_OPTION },
  async run({ values, args: [email = ''], services }) {
    const { accounts } = await services();
    if (!(await accounts.unlock(email))) {
      throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`);
    }
    const account = await accounts.findByEmail(email);
    if (values.json) return printJson({ sub: account?.sub, email: account?.email, locked: false });
    printLines(`Unlocked ${account?.email ?? email}: they can sign in again.`);
  },
});

function roleCommand(action: 'add' | 'remove') {
  return defineCommand({
    summary: action === 'add' ? 'Give a user a role' : 'Take a role away from a user',
    description: action === 'add'
      ? [
        'Give a user a role. Roles are released as the `roles` claim to apps that ask for the `roles` scope,',
        'and a resource server can limit scopes to roles (resources create --scope-role SCOPE=ROLE).',
        'Tokens already issued keep what they carry; the next sign-in or refresh sees the change.',
      ].join('\n')
      : 'Take a role away from a user. The next sign-in or token refresh no longer carries it.',
    args: [{ name: 'EMAIL', description: 'The user\'s email address' }, { name: 'ROLE', description: 'A role name, e.g. admin (letters, digits, _ . : -)' }],
    options: { json: JSON_OPTION },
    async run({ values, args: [email = '', role = ''], services }) {
      const { roles } = await services();
      const account = normalizeEmail(email);
      if (action === 'add') {
        const held = await roles.add(email, role);
        if (values.json) return printJson({ email: account, roles: held });
        return printLines(`${account} now has the roles: ${held.join(', ')}.`);
      }
      const { roles: held, removed } = await roles.remove(email, role);
      if (values.json) return printJson({ email: account, roles: held, removed });
      printLines(removed
        ? `Took ${role} from ${account}; roles now: ${held.join(', ') || 'none'}.`
        : `${account} did not have the role ${role}; roles: ${held.join(', ') || 'none'}.`);
    },
  });
}

const resetFactors = defineCommand({
  summary: 'Remove every second factor of a user who lost them',
  description: [
    'Remove the authenticator app, passkeys, codes by email and recovery codes of a user who lost',
    'all of them. They then sign in with their password alone, and apps that require a second factor',
    'ask them to set one up again. Make sure of who is asking before you do this.',
  ].join('\n'),
  args: [{ name: 'EMAIL', description: 'The user\'s email address' }],
  options: { json: JSON_OPTION },
  async run({ values, args: [email = ''], services }) {
    const { accounts, secondFactors } = await services();
    const account = await accounts.findByEmail(email);
    if (!account) throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`);
    await secondFactors.resetAll(account.sub);
    if (values.json) return printJson({ sub: account.sub, email: account.email, second_factors: false });
    printLines(`Removed every second factor of ${account.email}: they sign in with their password alone until they set one up.`);
  },
});

/** Files up to this size are read whole; 100,000 records with bcrypt hashes are about 15 MB. */
const IMPORT_FILE_LIMIT_BYTES = 512 * 1024 * 1024;

/** A one-line progress bar on a terminal (counts and rate); nothing when stderr is a pipe or a file. */
function progressBar(): ((progress: { done: number; total: number }) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const started = performance.now();
  return ({ done, total }) => {
    const width = 30;
    const filled = total ? Math.round((done / total) * width) : width;
    const rate = Math.round(done / Math.max((performance.now() - started) / 1000, 0.001));
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} records, ${rate}/s${done === total ? '\n' : ''}`);
  };
}

const importUsers = defineCommand({
  summary: 'Import users with their password hashes (JSON Lines, CSV, Auth0, Firebase, Keycloak)',
  description: [
    'Import accounts from another system. Hashes are kept as they are (bcrypt, scrypt, PBKDF2, argon2)',
    'and become argon2id at each person\'s first sign-in. Safe to run twice (matched by external_id, then',
    'email; accounts changed since are skipped) and safe to stop (each account is whole or absent).',
    'Fields: ' + IMPORT_FIELDS.join(', ') + '. See README, "Importing and exporting users".',
  ].join('\n'),
  args: [{ name: 'FILE', description: 'The file to import' }],
  options: {
    format: { type: 'string', placeholder: IMPORT_FORMATS.join('|'), description: 'The file\'s format (default: csv for *.csv, else jsonl)' },
    'dry-run': { type: 'boolean', description: 'Check every record and report what would happen, writing nothing' },
    'allow-weak-hashes': { type: 'boolean', description: 'Accept sha256:, sha1: and md5: digests and $1$ / $apr1$ md5-crypt (fast hashes; reported as weak)' },
    'send-set-password-links': { type: 'boolean', description: 'Mail a link to choose a password to each account imported without one' },
    json: JSON_OPTION,
  },
  check(values) {
    if (values.format !== undefined && !(IMPORT_FORMATS as readonly string[]).includes(values.format)) {
      throw new UsageError(`--format must be one of ${IMPORT_FORMATS.join(', ')}`, 'users import');
    }
  },
  async run({ values, args: [file = ''], services }) {
    const text = readImportFile(file);
    const records = parseImportFile(text, (values.format as ImportFormat | undefined) ?? formatOfFile(file));
    const { userImport, passwordReset } = await services();
    const report: ImportReport & { set_password_links_sent?: number } = await userImport.import(records, {
      dryRun: values['dry-run'],
      allowWeakHashes: values['allow-weak-hashes'],
      onProgress: records.length >= 1000 ? progressBar() : undefined,
    });
    if (values['send-set-password-links'] && !values['dry-run']) {
      let sent = 0;
      for (const email of report.without_password) if (await passwordReset.request(email)) sent += 1;
      report.set_password_links_sent = sent;
    }
    if (values.json) return printJson(report);
    printLines(
      `${values['dry-run'] ? 'Dry run: would import' : 'Imported'} ${report.imported}, updated ${report.updated}, skipped ${report.skipped}, ${report.errors.length} errors.`,
      ...report.errors.map((error) => `  line ${error.line}: ${error.reason}`),
      ...report.skipped_records.slice(0, 20).map((skip) => `  line ${skip.line} skipped (${skip.email}): ${skip.reason}`),
      ...(report.skipped_records.length > 20 ? [`  ... and ${report.skipped_records.length - 20} more skipped (--json lists them all)`] : []),
      ...(report.weak_hashes.length ? [`  ${report.weak_hashes.length} accounts came with weak hashes (${[...new Set(report.weak_hashes.map((weak) => weak.algorithm))].join(', ')}); they become argon2id at their next sign-in.`] : []),
      ...report.notes.map((note) => `  line ${note.line}: ${note.note}`),
      ...(report.without_password.length ? [`  ${report.without_password.length} accounts have no password${report.set_password_links_sent !== undefined ? `; ${report.set_password_links_sent} set-password links mailed` : ' (--send-set-password-links mails them a link)'}.`] : []),
    );
  },
});

function readImportFile(file: string): string {
  try {
    const text = readFileSync(file);
    if (text.length > IMPORT_FILE_LIMIT_BYTES) throw new AppError('ERR_INVALID_INPUT', `${file} is larger than ${IMPORT_FILE_LIMIT_BYTES / 1024 / 1024} MB`);
    return text.toString('utf8');
  } catch (error) {
    if (isAppError(error)) throw error;
    throw new AppError('ERR_INVALID_INPUT', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}

const exportUsers = defineCommand({
  summary: 'Export users in the import format (hashes only with --with-hashes)',
  description: [
    'Write every account as JSON Lines (or CSV for *.csv), in the format "users import" reads, so an',
    'import of an export gives the same accounts. With --with-hashes the password hashes are included and',
    'the file is created readable by its owner only (0600); an existing file is refused.',
  ].join('\n'),
  args: [{ name: 'FILE', description: 'The file to create' }],
  options: {
    'with-hashes': { type: 'boolean', description: 'Include the password hashes (the file is created with mode 0600)' },
    format: { type: 'string', placeholder: 'jsonl|csv', description: 'The file\'s format (default: csv for *.csv, else jsonl)' },
    json: JSON_OPTION,
  },
  check(values) {
    if (values.format !== undefined && values.format !== 'jsonl' && values.format !== 'csv') throw new UsageError('--format must be jsonl or csv', 'users export');
  },
  async run({ values, args: [file = ''], services }) {
    const csv = (values.format ?? formatOfFile(file)) === 'csv';
    const withHashes = values['with-hashes'];
    const { userImport } = await services();
    let fd: number;
    try {
      // O_EXCL: never write hashes into a file someone else created (and may read) beforehand.
      fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, withHashes ? 0o600 : 0o644);
    } catch (error) {
      throw new AppError('ERR_INVALID_INPUT', `cannot create ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
    }
    let count = 0;
    try {
      // The umask can only take bits away; set the mode explicitly so it is exactly what was asked.
      if (withHashes) fchmodSync(fd, 0o600);
      const columns = IMPORT_FIELDS.filter((name) => withHashes || !name.startsWith('password_'));
      if (csv) writeSync(fd, `${columns.join(',')}\n`);
      for await (const record of userImport.export({ withHashes })) {
        writeSync(fd, csv ? `${csvLine(columns.map((name) => record[name]))}\n` : `${JSON.stringify(record)}\n`);
        count += 1;
      }
    } finally {
      closeSync(fd);
    }
    if (values.json) return printJson({ file, exported: count, with_hashes: withHashes });
    printLines(`Exported ${count} users to ${file}${withHashes ? ' with their password hashes (mode 0600: keep it safe, delete it when done)' : ''}.`);
  },
});

export const usersGroup = defineGroup('Manage user accounts', {
  create,
  list,
  import: importUsers,
  export: exportUsers,
  disable: setDisabledCommand(true),
  enable: setDisabledCommand(false),
  unlock,
  'reset-factors': resetFactors,
  roles: defineGroup('Manage a user\'s roles', {
    add: roleCommand('add'),
    remove: roleCommand('remove'),
  }),
});
