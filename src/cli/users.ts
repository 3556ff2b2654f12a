/**
 * `tessera users ...`: accounts. Passwords come from stdin only: an argument would sit in shell
 * history and in every `ps` listing.
 */
import { setTimeout as delay } from 'node:timers/promises';

import { accountView } from '../admin/views.ts';
import { normalizeEmail } from '../domain/accounts.ts';
import { AppError, isAppError } from '../errors.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, printTable, streams } from './output.ts';

/** Far above any valid password (256 characters); bounds what a mistaken pipe can make us buffer. */
const STDIN_LIMIT_BYTES = 64 * 1024;

/** Reads stdin to the end and strips one trailing newline (what `echo` and heredocs add), nothing more. */
async function readPasswordFromStdin(): Promise<string> {
  const { stdin, stderr } = streams();
  if (stdin.isTTY) stderr.write('Password (not hidden; end with Enter, then Ctrl-D): ');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > STDIN_LIMIT_BYTES) throw new AppError('ERR_INVALID_INPUT', 'the password on stdin is too long');
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.replace(/\r?\n$/, '');
}

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
    const password = await readPasswordFromStdin();
    const { accounts } = await services();
    const account = await accounts
      .register({ email: values.email, password, name: values.name, givenName: values['given-name'], familyName: values['family-name'] })
      .catch((error: unknown) => {
        if (isAppError(error, 'ERR_EMAIL_TAKEN')) {
          throw new AppError('ERR_EMAIL_TAKEN', `a user with the email ${normalizeEmail(values.email)} already exists`, { status: 409, cause: error });
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
    const users = (await (await services()).accounts.list()).map(accountView);
    if (values.json) return printJson(users);
    if (!users.length) return printLines('No users yet. Create one with "tessera users create".');
    printTable(
      ['EMAIL', 'SUB', 'STATUS', 'ROLES', 'NAME', 'CREATED'],
      users.map((user) => [user.email, user.sub, user.disabled ? 'disabled' : user.locked_until ? 'locked' : 'active', user.roles.join(',') || '-', user.name ?? '', user.created_at]),
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
        throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`, { status: 404 });
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
      throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`, { status: 404 });
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
    if (!account) throw new AppError('ERR_NOT_FOUND', `no user with the email ${normalizeEmail(email)}`, { status: 404 });
    await secondFactors.resetAll(account.sub);
    if (values.json) return printJson({ sub: account.sub, email: account.email, second_factors: false });
    printLines(`Removed every second factor of ${account.email}: they sign in with their password alone until they set one up.`);
  },
});

export const usersGroup = defineGroup('Manage user accounts', {
  create,
  list,
  disable: setDisabledCommand(true),
  enable: setDisabledCommand(false),
  unlock,
  'reset-factors': resetFactors,
  roles: defineGroup('Manage a user\'s roles', {
    add: roleCommand('add'),
    remove: roleCommand('remove'),
  }),
});
