/**
 * Email verification and password reset end to end: Tessera sends over SMTP to a real server on
 * loopback, the test reads the message as a mail client would (mailparser) and follows its link
 * with a browser stand-in. Links work once and for a short time; a reset ends every session.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import test from 'ava';
import * as oidc from 'openid-client';
import { TOTP } from 'otpauth';

import { eventually } from './helpers/eventually.ts';
import { attemptSignIn, openLoginForm } from './helpers/login-form.ts';
import { linkIn, startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { authorizationRequest, discover, newPerson, RP_CALLBACK, signIn, staticClient, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

interface Fixture {
  server: TestServer;
  mail: MailCatcher;
  config: oidc.Configuration;
}

async function setUp(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string> = {}): Promise<Fixture> {
  const mail = await startMailCatcher();
  const server = await startTestServer({ clients: [staticClient()], env: { SMTP_URL: mail.url, ...env } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
    await mail.close();
  });
  return { server, mail, config: await discover(server.issuer) };
}

function assertNoLeak(t: { notRegex(value: string, pattern: RegExp, message?: string): void }, body: string) {
  t.notRegex(body, /\n\s+at [\w.<>]+ \(|node_modules|\.ts:\d+/, 'no stack trace or source path');
}

/** Submits the first form on `page` whose action contains `actionPart`, without following redirects. */
async function post(agent: UserAgent, page: Page, actionPart: string, values: Record<string, string> = {}): Promise<Page> {
  const form = readForm(page.body, actionPart);
  return agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, ...values } });
}

async function silentSignIn(config: oidc.Configuration, agent: UserAgent): Promise<URL> {
  const request = await authorizationRequest(config, { prompt: 'none' });
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  return new URL(page.url);
}

async function registerThroughPage(fixture: Fixture, person: Person, agent = new UserAgent()) {
  return signIn(fixture.config, agent, person, { register: true });
}

test('registration sends a single-use link that confirms the address, and email_verified becomes true', async (t) => {
  const fixture = await setUp(t);
  const person = newPerson();
  const { tokens } = await registerThroughPage(fixture, person);
  t.false(tokens.claims()!.email_verified, 'not verified at first, and signing in did not wait for it');

  const message = await fixture.mail.waitFor((mail) => mail.to === person.email);
  t.is(message.subject, 'Confirm your email address');
  t.regex(message.text, /works once, for 24 hours/);
  t.regex(message.html, /<a href="http:\/\/localhost:\d+\/email\/verify\?token=/);
  t.false(message.text.includes(person.password), 'never the password');
  const link = linkIn(message, `${fixture.server.issuer}/email/verify?token=`);

  const browser = new UserAgent();
  const confirm = await browser.request(link);
  t.is(confirm.status, 200);
  t.regex(confirm.body, /Confirm my email address/);
  t.false((await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!.emailVerified, 'opening the link (a mail scanner does) changes nothing');

  const done = await post(browser, confirm, '/email/verify');
  t.is(done.status, 303);
  const verified = await browser.request(new URL(done.headers.get('location')!, done.url).href);
  t.regex(verified.body, /Your email address is confirmed/);
  t.true((await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!.emailVerified);

  const again = await signIn(fixture.config, new UserAgent(), person);
  t.true(again.tokens.claims()!.email_verified, 'the ID token now says so');
  const userinfo = await oidc.fetchUserInfo(fixture.config, again.tokens.access_token, again.tokens.claims()!.sub);
  t.true(userinfo.email_verified);

  const reopened = await new UserAgent().request(link);
  t.is(reopened.status, 400, 'a used link does not work again');
  t.regex(reopened.body, /expired or was already used/);
  const replay = await browser.request(`${fixture.server.url}/email/verify`, { form: { ...readForm(confirm.body, '/email/verify').fields } });
  t.is(replay.status, 400);
  t.regex(replay.body, /expired or was already used/);
});

// Real-clock expiry: on its own, before the file's concurrent tests, and with a
// lifetime of 3 s, so a busy machine delivering the mail does not outlast it.
test.serial('a verification link stops working when it expires', async (t) => {
  const fixture = await setUp(t, { EMAIL_VERIFICATION_TTL: '3' });
  const person = newPerson();
  await registerThroughPage(fixture, person);
  const link = linkIn(await fixture.mail.waitFor((mail) => mail.to === person.email), `${fixture.server.issuer}/email/verify?token=`);
  const browser = new UserAgent();
  const confirm = await browser.request(link);
  t.is(confirm.status, 200, 'live at first');
  await delay(3100);
  t.is((await browser.request(link)).status, 400);
  const late = await post(browser, confirm, '/email/verify');
  t.is(late.status, 400);
  t.regex(late.body, /expired or was already used/);
  t.false((await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!.emailVerified);
});

test('a password reset runs from the sign-in page through the email, ends every session, and the person signs in with the new password', async (t) => {
  const fixture = await setUp(t);
  const person = newPerson();
  const laptop = new UserAgent();
  await registerThroughPage(fixture, person, laptop);
  const phone = new UserAgent();
  await signIn(fixture.config, phone, person);
  t.truthy((await silentSignIn(fixture.config, phone)).searchParams.get('code'), 'the phone has a session');
  const verificationMail = await fixture.mail.waitFor((mail) => mail.to === person.email);

  // Someone on a third browser has forgotten the password, in the middle of signing in.
  const browser = new UserAgent();
  const login = await openLoginForm(fixture.server, browser);
  const uid = /\/interaction\/([\w-]+)\/login/.exec(login.action)![1]!;
  const forgotHref = /href="(\/password\/forgot\?uid=[^"]+)"/.exec(login.page.body)?.[1];
  t.is(forgotHref, `/password/forgot?uid=${uid}`, 'the login page links to the reset, keeping the sign-in');
  const forgot = await browser.request(new URL(forgotHref!, fixture.server.url).href);
  t.is(forgot.status, 200);
  const asked = await post(browser, forgot, '/password/forgot', { email: person.email.toUpperCase() });
  t.is(asked.status, 303);
  const sent = await browser.request(new URL(asked.headers.get('location')!, fixture.server.url).href);
  t.regex(sent.body, /If an account exists for that email address, we sent it a link/);

  const message = await fixture.mail.waitFor((mail) => mail.to === person.email && mail !== verificationMail);
  t.is(message.subject, 'Reset your password');
  t.regex(message.text, /works once, for 30 minutes/);
  t.regex(message.html, /Choose a new password/);
  const link = linkIn(message, `${fixture.server.issuer}/password/reset?token=`);
  t.true(link.endsWith(`&uid=${uid}`));

  const form = await browser.request(link);
  t.is(form.status, 200);
  t.regex(form.body, new RegExp(`for <strong>${person.email.replace(/[.]/g, '\\.')}</strong>`));
  t.regex(form.body, /minlength="12"/);

  const mismatch = await post(browser, form, '/password/reset', { password: 'a brand new passphrase', password_confirmation: 'something else' });
  t.is(mismatch.status, 400);
  t.regex(mismatch.body, /The two passwords do not match/);
  const common = await post(browser, form, '/password/reset', { password: 'password1234', password_confirmation: 'password1234' });
  t.is(common.status, 400);
  t.regex(common.body, /This password is too common: it appears in lists of leaked passwords/);
  const short = await post(browser, form, '/password/reset', { password: 'too short', password_confirmation: 'too short' });
  t.is(short.status, 400);
  t.regex(short.body, /Use at least 12 characters/);

  const newPassword = 'a brand new passphrase for ada';
  const changed = await post(browser, form, '/password/reset', { password: newPassword, password_confirmation: newPassword });
  t.is(changed.status, 303, 'refused passwords did not use the link up');
  const done = await browser.request(new URL(changed.headers.get('location')!, fixture.server.url).href);
  t.regex(done.body, /Your password was changed/);
  const continueHref = /href="(\/interaction\/[\w-]+\/login)"/.exec(done.body)?.[1];
  t.is(continueHref, `/interaction/${uid}/login`);

  for (const agent of [laptop, phone]) {
    const callback = await silentSignIn(fixture.config, agent);
    t.is(callback.searchParams.get('error'), 'login_required', 'every existing session ended');
  }

  // The sign-in that was in progress goes on, with the new password.
  const resumed = await browser.follow(new URL(continueHref!, fixture.server.url).href, RP_CALLBACK);
  t.is(resumed.status, 200);
  const signedIn = await submit(browser, resumed, '/login', { email: person.email, password: newPassword });
  const consent = signedIn.body.includes('/consent"') ? await submit(browser, signedIn, '/consent', { decision: 'allow' }) : signedIn;
  t.true(consent.url.startsWith(RP_CALLBACK), `${consent.status} ${consent.url}`);
  t.truthy(new URL(consent.url).searchParams.get('code'));

  t.is((await attemptSignIn(fixture.server, person.email, person.password)).status, 401, 'the old password no longer works');
  t.true((await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!.emailVerified, 'the link proved the mailbox');

  const reused = await new UserAgent().request(link);
  t.is(reused.status, 400, 'the link works once');
  t.regex(reused.body, /expired or was already used/);
  t.regex(reused.body, /Ask for a new link/);
  // The old form again, with a CSRF token good for this browser now (it has signed in since, and CSRF
  // tokens are bound to the session): the used link itself must refuse it.
  const current = readForm((await browser.request(new URL('/password/forgot', fixture.server.url).href)).body, '/password/forgot');
  const stale = readForm(form.body, '/password/reset');
  const replay = await browser.request(new URL(stale.action, form.url).href, {
    form: { ...stale.fields, _csrf: current.fields._csrf!, password: 'yet another new passphrase', password_confirmation: 'yet another new passphrase' },
  });
  t.is(replay.status, 400);
  t.regex(replay.body, /expired or was already used/);
});

/** Asks for a reset link on the forgot-password page, follows it from the mail and chooses `password`. */
async function resetThroughMail(fixture: Fixture, email: string, password: string): Promise<Page> {
  const browser = new UserAgent();
  const earlier = new Set(fixture.mail.messages);
  const forgot = await browser.request(new URL('/password/forgot', fixture.server.url).href);
  expectSeeOther(await post(browser, forgot, '/password/forgot', { email }));
  const message = await fixture.mail.waitFor((mail) => mail.to === email && mail.subject === 'Reset your password' && !earlier.has(mail));
  const form = await browser.request(linkIn(message, `${fixture.server.issuer}/password/reset?token=`));
  return post(browser, form, '/password/reset', { password, password_confirmation: password });
}

function expectSeeOther(page: Page): void {
  if (page.status !== 303) throw new Error(`expected 303, got ${page.status}: ${page.body.slice(0, 300)}`);
}

for (const [setting, kept] of [[undefined, false], ['false', true]] as const) {
  test(`a password reset ${kept ? 'keeps' : 'ends'} the refresh tokens of apps ${setting ? `with REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE=${setting}` : 'by default'}`, async (t) => {
    const fixture = await setUp(t, setting ? { REVOKE_APP_TOKENS_ON_PASSWORD_CHANGE: setting } : {});
    const person = newPerson();
    const { tokens } = await registerThroughPage(fixture, person);
    t.truthy(tokens.refresh_token);

    const reset = await resetThroughMail(fixture, person.email, 'a brand new passphrase for the app test');
    t.is(reset.status, 303, reset.body);

    const refreshed = oidc.refreshTokenGrant(fixture.config, tokens.refresh_token!);
    if (kept) {
      t.truthy((await refreshed).access_token, 'the app keeps its refresh token');
    } else {
      const error = await t.throwsAsync(refreshed);
      t.is((error as { error?: string }).error, 'invalid_grant', 'the app must send the person to sign in again');
    }
  });
}

/** Someone with the password signs in to the account page and sets up an authenticator app of their own. */
async function addAuthenticatorApp(fixture: Fixture, person: Person): Promise<void> {
  const agent = new UserAgent();
  const login = await agent.follow(`${fixture.server.issuer}/account`, 'never:');
  const page = await submit(agent, login, '/login', { email: person.email, password: person.password }, 'never:');
  expectSeeOther(await post(agent, page, 'action="/account/totp/start"'));
  const setup = await agent.request(`${fixture.server.issuer}/account/totp`);
  const secret = /<code class="secret">([^<]+)<\/code>/.exec(setup.body)![1]!.replace(/\s+/g, '');
  expectSeeOther(await post(agent, setup, 'action="/account/totp/confirm"', { code: new TOTP({ secret, digits: 6, period: 30 }).generate() }));
}

/** Follows the newest reset link mailed to `email` to its form. */
async function openResetForm(fixture: Fixture, email: string): Promise<{ browser: UserAgent; form: Page }> {
  const browser = new UserAgent();
  const earlier = new Set(fixture.mail.messages);
  const forgot = await browser.request(new URL('/password/forgot', fixture.server.url).href);
  expectSeeOther(await post(browser, forgot, '/password/forgot', { email }));
  const message = await fixture.mail.waitFor((mail) => mail.to === email && mail.subject === 'Reset your password' && !earlier.has(mail));
  return { browser, form: await browser.request(linkIn(message, `${fixture.server.issuer}/password/reset?token=`)) };
}

test('a password reset offers to remove a second factor added in the last days, ticked, and removes it with the new password', async (t) => {
  const fixture = await setUp(t);
  const person = newPerson();
  await registerThroughPage(fixture, person);
  await addAuthenticatorApp(fixture, person);
  const notice = await fixture.mail.waitFor((mail) => mail.to === person.email && /was added/.test(mail.subject));
  t.regex(notice.text, /An authenticator app was added/, 'the owner is told');

  const { browser, form } = await openResetForm(fixture, person.email);
  t.regex(form.body, /Sign-in methods added in the last 7 days/);
  t.regex(form.body, /<input type="checkbox" name="remove_factor" value="totp" checked> Remove Authenticator app, added /);
  const password = 'the owner takes the account back';
  const changed = await post(browser, form, '/password/reset', { password, password_confirmation: password });
  t.is(changed.status, 303, changed.body);
  const done = await browser.request(new URL(changed.headers.get('location')!, fixture.server.url).href);
  t.regex(done.body, /One sign-in method was removed from your account/);

  const summary = await fixture.server.withServices(async ({ accounts, secondFactors }) => secondFactors.summary((await accounts.findByEmail(person.email))!.sub));
  t.like(summary, { totp: false, enabled: false, recoveryCodesLeft: 0 });
  await fixture.mail.waitFor((mail) => mail.to === person.email && /was removed/.test(mail.subject));
});

test('a reset keeps a recently added second factor the person unticked', async (t) => {
  const fixture = await setUp(t);
  const person = newPerson();
  await registerThroughPage(fixture, person);
  await addAuthenticatorApp(fixture, person);

  const { browser, form } = await openResetForm(fixture, person.email);
  const { fields } = readForm(form.body, '/password/reset');
  delete fields.remove_factor;
  const password = 'a new password, same authenticator app';
  const changed = await browser.request(new URL('/password/reset', fixture.server.url).href, { form: { ...fields, password, password_confirmation: password } });
  t.is(changed.status, 303, changed.body);
  const summary = await fixture.server.withServices(async ({ accounts, secondFactors }) => secondFactors.summary((await accounts.findByEmail(person.email))!.sub));
  t.true(summary.totp, 'the authenticator app stays');
});

test('asking to reset the password of an unknown email looks exactly like a known one, and sends nothing', async (t) => {
  const fixture = await setUp(t);
  const person = newPerson();
  await fixture.server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  const answers: string[] = [];
  for (const email of [person.email, `nobody.${Date.now()}@example.com`]) {
    const browser = new UserAgent();
    const forgot = await browser.request(`${fixture.server.url}/password/forgot`);
    const asked = await post(browser, forgot, '/password/forgot', { email });
    const sent = await browser.request(new URL(asked.headers.get('location')!, fixture.server.url).href);
    answers.push(`${asked.status} ${asked.headers.get('location')} ${sent.status} ${sent.body.replace(/value="[^"]*"/g, '')}`);
  }
  t.is(answers[0], answers[1]);
  await fixture.mail.waitFor((mail) => mail.to === person.email);
  await delay(300);
  t.deepEqual(fixture.mail.messages.map((mail) => mail.to), [person.email]);
});

test.serial('a reset link expires, and a reset lifts a lockout', async (t) => {
  const fixture = await setUp(t, { PASSWORD_RESET_TTL: '3' });
  const person = newPerson();
  await fixture.server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  /** Asks for a reset link and returns it from the mail that follows. */
  const ask = async () => {
    const before = fixture.mail.messages.length;
    const browser = new UserAgent();
    const forgot = await browser.request(`${fixture.server.url}/password/forgot`);
    await post(browser, forgot, '/password/forgot', { email: person.email });
    const message = await fixture.mail.waitFor((mail) => fixture.mail.messages.indexOf(mail) >= before && mail.subject === 'Reset your password');
    return { browser, link: linkIn(message, `${fixture.server.issuer}/password/reset?token=`) };
  };

  const first = await ask();
  const form = await first.browser.request(first.link);
  t.is(form.status, 200);
  await delay(3100);
  const late = await post(first.browser, form, '/password/reset', { password: 'a brand new passphrase', password_confirmation: 'a brand new passphrase' });
  t.is(late.status, 400);
  t.regex(late.body, /expired or was already used/);

  for (let i = 0; i < 5; i += 1) await attemptSignIn(fixture.server, person.email, 'a wrong password');
  t.truthy((await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!.lockedUntil);
  const lockNotice = await fixture.mail.waitFor((mail) => mail.to === person.email && /locked/.test(mail.subject));
  t.regex(lockNotice.text, new RegExp(`${fixture.server.issuer}/password/forgot`), 'the lockout notice offers a reset');

  const second = await ask();
  const fresh = await second.browser.request(second.link);
  const changed = await post(second.browser, fresh, '/password/reset', { password: 'a brand new passphrase', password_confirmation: 'a brand new passphrase' });
  t.is(changed.status, 303);
  const account = (await fixture.server.withServices(({ accounts }) => accounts.findByEmail(person.email)))!;
  t.is(account.lockedUntil, undefined);
  t.is(account.failedSignIns, 0);
  t.is((await attemptSignIn(fixture.server, person.email, 'a brand new passphrase')).status, 303, 'signs in at once');
});

test('the recovery pages refuse bad input with a clear 4xx, never a 500', async (t) => {
  const fixture = await setUp(t);
  const browser = new UserAgent();
  const forgot = await browser.request(`${fixture.server.url}/password/forgot`);
  for (const email of ['', 'not-an-email', 'a'.repeat(300) + '@example.com']) {
    const page = await post(browser, forgot, '/password/forgot', { email });
    t.is(page.status, 400, email.slice(0, 20));
    t.regex(page.body, /Enter the email address of your account/);
    assertNoLeak(t, page.body);
  }
  const noToken = await browser.request(`${fixture.server.url}/password/forgot`, { form: { email: 'a@example.com' } });
  t.is(noToken.status, 403, 'CSRF token required');
  t.regex(noToken.body, /This form expired/);

  const csrf = readForm(forgot.body, '/password/forgot').fields._csrf!;
  const cases: Array<[string, Record<string, string> | undefined, RegExp]> = [
    ['/password/reset', undefined, /expired or was already used/],
    ['/password/reset?token=', undefined, /expired or was already used/],
    [`/password/reset?token=${'A'.repeat(43)}`, undefined, /expired or was already used/],
    ['/password/reset?token=%00%ff', undefined, /expired or was already used/],
    ['/password/reset', { _csrf: csrf, token: 'nope', password: 'a brand new passphrase', password_confirmation: 'a brand new passphrase' }, /expired or was already used/],
    ['/password/reset', { _csrf: csrf }, /expired or was already used/],
    ['/email/verify?token=nope', undefined, /expired or was already used/],
    ['/email/verify', { _csrf: csrf }, /expired or was already used/],
    ['/email/verify', { _csrf: csrf, token: 'B'.repeat(43) }, /expired or was already used/],
  ];
  for (const [target, form, message] of cases) {
    const page = await browser.request(`${fixture.server.url}${target}`, form ? { form } : {});
    t.is(page.status, 400, target);
    t.regex(page.body, message);
    assertNoLeak(t, page.body);
  }
  const repeated = new URLSearchParams({ _csrf: csrf });
  repeated.append('email', 'a@example.com');
  repeated.append('email', 'b@example.com');
  const odd = await browser.request(`${fixture.server.url}/password/forgot`, { form: Object.fromEntries(repeated) });
  t.true(odd.status === 400 || odd.status === 303, String(odd.status));
  const hostileUid = await browser.request(`${fixture.server.url}/password/forgot?uid=%22%3E%3Cscript%3E`);
  t.is(hostileUid.status, 200);
  t.false(hostileUid.body.includes('<script>'));
});

test('without SMTP_URL the messages are written to DATA_DIR/outbox as .eml files', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const person = newPerson();
  await signIn(await discover(server.issuer), new UserAgent(), person, { register: true });
  const outbox = path.join(server.dataDir, 'outbox');
  const files = await eventually(() => {
    try {
      const written = readdirSync(outbox).filter((file) => file.endsWith('.eml'));
      return written.length ? written : undefined;
    } catch {
      return undefined; // not created yet
    }
  }, 5_000) ?? [];
  t.is(files.length, 1);
  const eml = readFileSync(path.join(outbox, files[0]!), 'utf8');
  t.regex(eml, new RegExp(`To: ${person.email.replace(/[.]/g, '\\.')}`));
  t.regex(eml, /Subject: Confirm your email address/);
});
