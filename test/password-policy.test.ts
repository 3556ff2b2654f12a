/**
 * The password policy (NIST SP 800-63B): length, leaked passwords, the person's own email; checked
 * as a unit and through the registration page, where each refusal says why.
 */
import test from 'ava';

import { BreachedPasswords, PasswordPolicy, passwordLength, type PasswordProblemCode } from '../src/domain/password-policy.ts';
import { openLoginForm } from './helpers/login-form.ts';
import { newPerson, staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const policy = new PasswordPolicy(12);

test('the leaked-password list comes from the bundled package and holds well over 100,000 passwords', async (t) => {
  const list = new BreachedPasswords(12);
  await list.load();
  t.true(list.stats!.total >= 100_000, `${list.stats!.total} passwords`);
  t.true(list.stats!.kept > 10_000, 'those long enough to pass the length rule are kept');
  t.log(list.stats);
});

test('the policy refuses short, overlong, leaked and email-based passwords, with a plain reason', async (t) => {
  const cases: Array<[string, string | undefined, PasswordProblemCode]> = [
    ['eleven char', undefined, 'too_short'],
    ['a'.repeat(257), undefined, 'too_long'],
    ['password1234', undefined, 'common'],
    ['PassWord1234', undefined, 'common'],
    [' password1234 ', undefined, 'common'],
    ['ada.lovelace@example.com', 'ada.lovelace@example.com', 'contains_email'],
    ['my name is ada.lovelace!', 'Ada.Lovelace@example.com', 'contains_email'],
    ['write to jo@example.com', 'jo@example.com', 'contains_email'],
  ];
  for (const [password, email, code] of cases) {
    const problem = await policy.check(password, { email });
    t.is(problem?.code, code, password);
    t.regex(problem?.message ?? '', /\w+ \w+/);
  }
  t.is((await policy.check('password1234'))?.message, 'This password is too common: it appears in lists of leaked passwords. Choose another one');
  t.is((await policy.check('short'))?.message, 'Use at least 12 characters for your password');
});

test('the policy accepts long passphrases, any characters, and no composition rules apply', async (t) => {
  for (const password of [
    'x'.repeat(12).replace(/x/g, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(Math.random() * 26)]!),
    'correct horse battery staple',
    'Zq'.repeat(32),
    'a'.repeat(256),
    'пароль без цифр и знаков',
    'パスワードは長いほうがいい',
    '🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊',
    'jo likes tea, very much',
  ]) {
    t.is(await policy.check(password, { email: 'jo@example.com' }), undefined, password);
  }
  t.is(passwordLength('🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊'), 11, 'characters are counted as people count them');
  t.is((await policy.check('🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊🦊'))?.code, 'too_short');
});

async function startWith(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer({ clients: [staticClient()], env });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  return server;
}

async function registrationPage(server: TestServer) {
  const { agent, action, fields } = await openLoginForm(server);
  const registerAction = action.replace(/\/login$/, '/register');
  const page = await agent.request(registerAction);
  return { agent, registerAction, fields, page };
}

test('the registration page refuses a weak password with the reason and accepts strong ones', async (t) => {
  const server = await startWith(t);
  const cases: Array<[string, number, RegExp]> = [
    ['short', 400, /Use at least 12 characters for your password/],
    ['p'.repeat(257), 400, /Passwords are limited to 256 characters/],
    ['password1234', 400, /This password is too common: it appears in lists of leaked passwords/],
    ['qwertyuiop123', 400, /too common/],
  ];
  for (const [password, status, reason] of cases) {
    const person = newPerson();
    const { agent, registerAction, fields } = await registrationPage(server);
    const page = await agent.request(registerAction, { form: { ...fields, email: person.email, password, password_confirmation: password } });
    t.is(page.status, status, password.slice(0, 20));
    t.regex(page.body, reason);
    t.regex(page.body, new RegExp(`value="${person.email.replace(/[.]/g, '\\.')}"`), 'what was typed is kept');
    t.is(await server.withServices(({ accounts }) => accounts.findByEmail(person.email)), undefined);
  }

  const person = newPerson();
  const own = `${person.email.split('@')[0]} forever`;
  const { agent, registerAction, fields } = await registrationPage(server);
  const refused = await agent.request(registerAction, { form: { ...fields, email: person.email, password: own, password_confirmation: own } });
  t.is(refused.status, 400);
  t.regex(refused.body, /does not contain your email address/);

  for (const password of ['Zq3'.repeat(21) + 'x', 'mot de passe très long et sûr ✓', '长密码比复杂密码更安全更好记']) {
    const someone = newPerson();
    const form = await registrationPage(server);
    const page = await form.agent.request(form.registerAction, { form: { ...form.fields, email: someone.email, password, password_confirmation: password } });
    t.is(page.status, 303, `${password}: ${page.body.slice(0, 300)}`);
    const account = await server.withServices(async ({ accounts }) => accounts.authenticate(someone.email, password));
    t.is(account.email, someone.email, 'and the password signs in');
  }
});

test('PASSWORD_MIN_LENGTH drives the form hint, its minlength and the refusal', async (t) => {
  const server = await startWith(t, { PASSWORD_MIN_LENGTH: '16' });
  const { agent, registerAction, fields, page } = await registrationPage(server);
  t.regex(page.body, /minlength="16"/);
  t.regex(page.body, /At least 16 characters/);
  const person = newPerson();
  const refused = await agent.request(registerAction, { form: { ...fields, email: person.email, password: 'fifteen chars!!', password_confirmation: 'fifteen chars!!' } });
  t.is(refused.status, 400);
  t.regex(refused.body, /Use at least 16 characters for your password/);
});
