/**
 * The account page end to end: a real server, the page's own sign-in through Tessera's OIDC flow,
 * its forms posted as a browser posts them, and a real relying party (openid-client) whose sessions,
 * grants and tokens the page shows and ends.
 */
import test from 'ava';
import * as oidc from 'openid-client';
import { TOTP } from 'otpauth';

import { authorizationRequest, discover, RP_CALLBACK, signIn, staticClient, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

/** A prefix no redirect ever matches: follow every hop. */
const NOWHERE = 'never:';

let server: TestServer;
let rp: oidc.Configuration;
let counter = 0;

test.before(async () => {
  server = await startTestServer({ clients: [staticClient()] });
  rp = await discover(server.issuer);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

async function newAccount(): Promise<Person> {
  counter += 1;
  const person = { email: `account${counter}.${Date.now()}@example.com`, password: `an unusual passphrase ${counter} for the account page`, name: `Person ${counter}` };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password, name: person.name }));
  return person;
}

/** Opens /account in `agent`, signs in on the page it is sent to, and returns the account page. */
async function signInToAccount(agent: UserAgent, person: Person): Promise<Page> {
  const login = await agent.follow(`${server.issuer}/account`, NOWHERE);
  const page = await submit(agent, login, '/login', { email: person.email, password: person.password }, NOWHERE);
  if (page.status !== 200 || !page.url.endsWith('/account')) throw new Error(`expected the account page, got ${page.status} at ${page.url}:\n${page.body.slice(0, 1500)}`);
  return page;
}

/** Posts a form of the account page (CSRF token included) without following the answer. */
async function post(agent: UserAgent, page: Page, action: string, values: Record<string, string> = {}): Promise<Page> {
  const form = readForm(page.body, `action="${action}"`);
  return agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, ...values } });
}

async function accountPage(agent: UserAgent): Promise<Page> {
  return agent.request(`${server.issuer}/account`);
}

/** prompt=none at the RP: a code while the browser's Tessera session lives, login_required once it ended. */
async function silentSignIn(agent: UserAgent): Promise<URL> {
  const request = await authorizationRequest(rp, { prompt: 'none', scope: 'openid' });
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  return new URL(page.url);
}

test('the account page sends a visitor who is not signed in to sign in with Tessera, and back to the page', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const first = await accountPage(agent);
  t.is(first.status, 302);
  const location = new URL(first.headers.get('location')!, server.issuer);
  t.is(location.pathname, '/auth');
  t.is(location.searchParams.get('client_id'), 'tessera-account');
  t.is(location.searchParams.get('code_challenge_method'), 'S256');
  t.is(location.searchParams.get('redirect_uri'), `${server.issuer}/account/callback`);

  const page = await signInToAccount(agent, person);
  t.regex(page.body, /Your account/);
  t.true(page.body.includes(person.email));
  t.is(page.headers.get('cache-control'), 'no-store');
  t.falsy(/consent/.exec(page.url), 'the account page never asks for consent');

  const cookies = (await accountPage(agent)).headers.getSetCookie().join('\n');
  t.regex(cookies, /tessera\.account=[^;]+;[^\n]*path=\/;/i);
  t.regex(cookies, /httponly/i);
  t.regex(cookies, /samesite=lax/i);
});

test('a form posted without a signed-in session changes nothing and goes back to the page; without its CSRF token it is refused', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const page = await signInToAccount(agent, person);

  const stranger = new UserAgent();
  await stranger.request(`${server.issuer}/account`);
  const form = readForm(page.body, 'action="/account/profile"');
  const anonymous = await stranger.request(`${server.issuer}/account/profile`, { form: { ...form.fields, name: 'Mallory' } });
  t.true(anonymous.status === 403 || anonymous.status === 303, `got ${anonymous.status}`);

  const noToken = await agent.request(`${server.issuer}/account/profile`, { form: { name: 'Mallory' } });
  t.is(noToken.status, 403);
  const account = await server.withServices(({ accounts }) => accounts.findByEmail(person.email));
  t.is(account?.name, person.name);
});

test('the profile form saves the names, and an emptied field clears its name', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  let page = await signInToAccount(agent, person);

  const saved = await post(agent, page, '/account/profile', { name: 'Ada Lovelace', given_name: 'Ada', family_name: 'Lovelace' });
  t.is(saved.status, 303);
  t.is(saved.headers.get('location'), '/account?done=profile#profile');
  let account = await server.withServices(({ accounts }) => accounts.findByEmail(person.email));
  t.like(account, { name: 'Ada Lovelace', givenName: 'Ada', familyName: 'Lovelace' });

  page = await accountPage(agent);
  const cleared = await post(agent, page, '/account/profile', { name: '', given_name: 'Ada', family_name: '' });
  t.is(cleared.status, 303);
  account = await server.withServices(({ accounts }) => accounts.findByEmail(person.email));
  t.is(account?.name, undefined);
  t.is(account?.givenName, 'Ada');

  const tooLong = await post(agent, await accountPage(agent), '/account/profile', { name: 'x'.repeat(101) });
  t.is(tooLong.status, 400);
  t.regex(tooLong.body, /limited to 100 characters/);
});

test('a password change needs the current password, follows the policy, and signs out every other session', async (t) => {
  const person = await newAccount();
  const here = new UserAgent();
  const page = await signInToAccount(here, person);
  const elsewhere = new UserAgent();
  await signIn(rp, elsewhere, person, { parameters: { scope: 'openid' } });
  t.truthy((await silentSignIn(elsewhere)).searchParams.get('code'));

  const next = 'another unusual passphrase for this account';
  const wrong = await post(here, page, '/account/password', { current_password: 'not my password at all', new_password: next, new_password_confirmation: next });
  t.is(wrong.status, 400);
  t.regex(wrong.body, /current password is not right/);

  const weak = await post(here, await accountPage(here), '/account/password', { current_password: person.password, new_password: 'short', new_password_confirmation: 'short' });
  t.is(weak.status, 400);
  t.regex(weak.body, /at least \d+ characters/);

  const mismatch = await post(here, await accountPage(here), '/account/password', { current_password: person.password, new_password: next, new_password_confirmation: `${next}!` });
  t.is(mismatch.status, 400);
  t.regex(mismatch.body, /do not match/);

  const changed = await post(here, await accountPage(here), '/account/password', { current_password: person.password, new_password: next, new_password_confirmation: next });
  t.is(changed.status, 303);
  t.is((await silentSignIn(elsewhere)).searchParams.get('error'), 'login_required', 'the other browser was signed out');
  t.is((await accountPage(here)).status, 200, 'this browser stays signed in');

  await t.throwsAsync(signIn(rp, new UserAgent(), person, { parameters: { scope: 'openid' } }), undefined, 'the old password no longer works');
  const { tokens } = await signIn(rp, new UserAgent(), { ...person, password: next }, { parameters: { scope: 'openid' } });
  t.truthy(tokens.id_token);
});

test('wrong current passwords on the account page count towards the lockout, and a locked account takes no password change', async (t) => {
  const person = await newAccount();
  const here = new UserAgent();
  let page = await signInToAccount(here, person);
  const next = 'a passphrase the session thief would like';
  for (let i = 0; i < 5; i += 1) {
    const wrong = await post(here, page, '/account/password', { current_password: `guess number ${i} of the thief`, new_password: next, new_password_confirmation: next });
    t.is(wrong.status, 400);
    page = await accountPage(here);
  }
  t.truthy((await server.withServices(({ accounts }) => accounts.findByEmail(person.email)))?.lockedUntil, 'five wrong guesses lock the account');
  const right = await post(here, page, '/account/password', { current_password: person.password, new_password: next, new_password_confirmation: next });
  t.is(right.status, 400, 'even the right password changes nothing while locked');
  await t.throwsAsync(signIn(rp, new UserAgent(), { ...person, password: next }, { parameters: { scope: 'openid' } }));
});

test('the current-password check counts against the sign-in limit per account, with 429 over it', async (t) => {
  const limited = await startTestServer({ clients: [staticClient()], env: { RATE_LIMIT_SIGNIN_PER_ACCOUNT: '3/60' } });
  t.teardown(async () => {
    await limited.close();
    removeDir(limited.dataDir);
  });
  const person = { email: `limited.${Date.now()}@example.com`, password: 'an unusual passphrase for the limited page' };
  await limited.withServices(({ accounts }) => accounts.register(person));
  const here = new UserAgent();
  const login = await here.follow(`${limited.issuer}/account`, NOWHERE);
  let page = await submit(here, login, '/login', { email: person.email, password: person.password }, NOWHERE);
  t.true(page.url.endsWith('/account'), 'signing in is the first of three');
  const next = 'another unusual passphrase for the limited page';
  const statuses: number[] = [];
  for (let i = 0; i < 3; i += 1) {
    const answer = await post(here, page, '/account/password', { current_password: `wrong guess ${i}`, new_password: next, new_password_confirmation: next });
    statuses.push(answer.status);
    if (answer.status === 429) t.true(Number(answer.headers.get('retry-after')) >= 1);
    page = await here.request(`${limited.issuer}/account`);
  }
  t.deepEqual(statuses, [400, 400, 429]);
});

test('a password change on the account page ends the refresh tokens of apps', async (t) => {
  const person = await newAccount();
  const { tokens } = await signIn(rp, new UserAgent(), person, { parameters: { scope: 'openid offline_access' } });
  t.truthy(tokens.refresh_token);
  const here = new UserAgent();
  const next = 'a passphrase chosen after a theft, maybe';
  const changed = await post(here, await signInToAccount(here, person), '/account/password', { current_password: person.password, new_password: next, new_password_confirmation: next });
  t.is(changed.status, 303);
  const refresh = await t.throwsAsync(oidc.refreshTokenGrant(rp, tokens.refresh_token!));
  t.is((refresh as oidc.ResponseBodyError).error, 'invalid_grant');
  t.regex((await accountPage(here)).body, /<strong>Test RP<\/strong>/, 'the app keeps its grant: it only has to sign the person in again');
});

test('the sessions list shows every browser, and "sign out everywhere else" ends all but this one', async (t) => {
  const person = await newAccount();
  const here = new UserAgent();
  await signInToAccount(here, person);
  const laptop = new UserAgent();
  await signIn(rp, laptop, person, { parameters: { scope: 'openid' } });
  const phone = new UserAgent();
  await signIn(rp, phone, person, { parameters: { scope: 'openid' } });

  // Each session shows the browser that last used it.
  const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0';
  const silent = await authorizationRequest(rp, { prompt: 'none', scope: 'openid' });
  t.is((await laptop.request(silent.url.href, { headers: { 'user-agent': firefox } })).status, 303);

  const page = await accountPage(here);
  t.is((page.body.match(/Signed in <time/g) ?? []).length, 3);
  t.regex(page.body, /this browser/);
  t.regex(page.body, /apps: Test RP/);
  t.true(page.body.includes(`title="${firefox}">Firefox on Linux</strong>`));

  const ended = await post(here, page, '/account/sessions/end-others', { confirm: 'yes' });
  t.is(ended.status, 303);
  t.is((await silentSignIn(laptop)).searchParams.get('error'), 'login_required');
  t.is((await silentSignIn(phone)).searchParams.get('error'), 'login_required');
  const after = await accountPage(here);
  t.is(after.status, 200);
  t.is((after.body.match(/Signed in <time/g) ?? []).length, 1);
  t.regex(after.body, /not signed in anywhere else/);
});

test('connected apps shows each app with what it may do, and revoking it kills its tokens', async (t) => {
  const person = await newAccount();
  const phone = new UserAgent();
  const { tokens } = await signIn(rp, phone, person, { parameters: { scope: 'openid profile offline_access' } });
  t.truthy(tokens.refresh_token);

  const here = new UserAgent();
  const page = await signInToAccount(here, person);
  t.regex(page.body, /<strong>Test RP<\/strong>/);
  t.regex(page.body, /<code>profile<\/code> See your name/);
  t.regex(page.body, /<code>offline_access<\/code>/);
  t.notRegex(page.body, /Your Tessera account<\/strong>/, 'the account page itself is not a connected app');

  const revoked = await post(here, page, '/account/apps/revoke', { client_id: 'test-rp', confirm: 'yes' });
  t.is(revoked.status, 303);
  const refresh = await t.throwsAsync(oidc.refreshTokenGrant(rp, tokens.refresh_token!));
  t.is((refresh as oidc.ResponseBodyError).error, 'invalid_grant');
  await t.throwsAsync(oidc.fetchUserInfo(rp, tokens.access_token, oidc.skipSubjectCheck), undefined, 'the access token is revoked too');
  const after = await accountPage(here);
  t.regex(after.body, /No apps have access to your account/);

  const again = await post(here, after, '/account/sessions/end-others', { confirm: 'yes' });
  t.is(again.status, 303);
  const unknown = await here.request(`${server.issuer}/account/apps/revoke`, { form: { ...readForm(after.body, 'action="/account/sessions/end-others"').fields, client_id: 'test-rp', confirm: 'yes' } });
  t.is(unknown.status, 404, 'an app without access cannot be revoked twice');
});

test('signing out of Tessera ends the account page session', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  await signInToAccount(agent, person);
  const confirm = await agent.request(`${server.issuer}/session/end?client_id=tessera-account`);
  t.is(confirm.status, 200);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1];
  t.truthy(xsrf);
  const out = await agent.follow(`${server.issuer}/session/end/confirm`, NOWHERE, { form: { xsrf: xsrf!, logout: 'yes' } });
  t.is(out.status, 200);

  const after = await accountPage(agent);
  t.is(after.status, 302);
  t.true(after.headers.get('location')!.startsWith('/auth?'));
});

test('an authenticator app is set up from the account page, and its recovery codes are shown once', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const page = await signInToAccount(agent, person);
  t.regex(page.body, /Set up an authenticator app/);

  const started = await post(agent, page, '/account/totp/start');
  t.is(started.status, 303);
  t.is(started.headers.get('location'), '/account/totp');
  const enrolment = await agent.request(`${server.issuer}/account/totp`);
  t.is(enrolment.status, 200);
  t.regex(enrolment.body, /src="data:image\/png;base64,/);
  const secret = /<code class="secret">([^<]+)<\/code>/.exec(enrolment.body)?.[1]?.replace(/\s+/g, '');
  t.truthy(secret);

  const wrongCode = await post(agent, enrolment, '/account/totp/confirm', { code: 'abc' });
  t.is(wrongCode.status, 400);
  t.regex(wrongCode.body, /not right/);

  const code = new TOTP({ secret: secret!, digits: 6, period: 30 }).generate();
  const confirmed = await post(agent, await agent.request(`${server.issuer}/account/totp`), '/account/totp/confirm', { code });
  t.is(confirmed.status, 303);
  const codesUrl = new URL(confirmed.headers.get('location')!, server.issuer);
  t.is(codesUrl.pathname, '/account/recovery-codes');
  const codes = await agent.request(codesUrl.href);
  t.is((codes.body.match(/<li><code>/g) ?? []).length, 10);
  const reload = await agent.request(codesUrl.href);
  t.is((reload.body.match(/<li><code>/g) ?? []).length, 0);
  t.regex(reload.body, /already shown/);

  const after = await accountPage(agent);
  t.regex(after.body, /Remove authenticator app/);
  t.regex(after.body, /10 unused recovery codes left/);
});

test('once the account has a second factor, a recent sign-in with the password alone cannot add or remove one', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const page = await signInToAccount(agent, person);
  // Set up in another browser after this one signed in with the password alone.
  const codes = await server.withServices(async ({ accounts, secondFactors }) => {
    const { sub } = (await accounts.findByEmail(person.email))!;
    const { secret } = await secondFactors.startTotpEnrolment(sub);
    await secondFactors.confirmTotp(sub, new TOTP({ secret, digits: 6, period: 30 }).generate());
    return secondFactors.generateRecoveryCodes(sub);
  });

  const { fields } = readForm(page.body, 'action="/account/passkeys"');
  const options = await agent.request(`${server.issuer}/account/passkeys/options`, { form: { _csrf: fields._csrf! } });
  t.is(options.status, 401, 'no passkey options');
  t.is((JSON.parse(options.body) as { error: string }).error, 'reauthenticate');
  const removal = await agent.request(`${server.issuer}/account/totp/remove`, { form: { _csrf: fields._csrf! } });
  t.is(removal.status, 303);
  t.regex(removal.headers.get('location') ?? '', /^\/account\/signin\?reauthenticate=1/, 'sent to sign in again');
  t.regex((await accountPage(agent)).body, /Remove authenticator app/, 'the app is still there');

  // Signing in again asks for the second factor; with it, the change goes through.
  const login = await agent.follow(`${server.issuer}${removal.headers.get('location')}`, NOWHERE);
  const challenge = await submit(agent, login, '/login', { email: person.email, password: person.password }, NOWHERE);
  t.regex(challenge.url, /\/second-factor$/);
  const recoveryForm = await agent.request(`${challenge.url}?method=recovery-code`);
  const back = await submit(agent, recoveryForm, '/second-factor/recovery-code', { code: codes[0]! }, NOWHERE);
  t.is(new URL(back.url).pathname, '/account', `${back.status} ${back.url}`);
  const removed = await post(agent, back, '/account/totp/remove', { confirm: 'yes' });
  t.is(removed.status, 303);
  t.is(removed.headers.get('location'), '/account?done=totp-off#security');
});

test('the passkey section asks the browser to create a passkey for this account', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const page = await signInToAccount(agent, person);
  t.regex(page.body, /data-passkey="register" data-options="\/account\/passkeys\/options"/);
  const { fields } = readForm(page.body, 'action="/account/passkeys"');
  const response = await agent.request(`${server.issuer}/account/passkeys/options`, { form: { _csrf: fields._csrf! } });
  t.is(response.status, 200);
  const options = JSON.parse(response.body) as { rp: { id: string }; user: { name: string }; challenge: string; authenticatorSelection: { residentKey: string } };
  t.is(options.rp.id, 'localhost');
  t.is(options.user.name, person.email);
  t.true(options.challenge.length >= 16);
  t.is(options.authenticatorSelection.residentKey, 'required');

  const forged = await agent.request(`${server.issuer}/account/passkeys`, { form: { _csrf: fields._csrf!, credential: JSON.stringify({ id: 'a', rawId: 'a', type: 'public-key', response: { clientDataJSON: 'e30', attestationObject: 'AA' } }) } });
  t.is(forged.status, 400);
  t.regex(forged.body, /passkey could not be used/);
});

test('bad input to the account page never makes a 500', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const page = await signInToAccount(agent, person);
  const { fields } = readForm(page.body, 'action="/account/profile"');
  const attempts: Array<[string, Record<string, string>]> = [
    ['/account/apps/revoke', { client_id: '' }],
    ['/account/apps/revoke', { client_id: 'x'.repeat(5000) }],
    ['/account/passkeys/remove', { credential_id: 'nope' }],
    ['/account/passkeys', { credential: '{"id":1}' }],
    ['/account/passkeys', { credential: 'not json' }],
    ['/account/totp/confirm', { code: '123456' }],
    ['/account/email-codes/confirm', { code: '000000' }],
    ['/account/password', {}],
    ['/account/profile', { name: '\u0000' }],
  ];
  for (const [path, values] of attempts) {
    const answer = await agent.request(`${server.issuer}${path}`, { form: { ...fields, confirm: 'yes', ...values } });
    t.true(answer.status < 500, `${path} answered ${answer.status}`);
  }
  for (const path of ['/account/callback', '/account/callback?code=x&state=y', '/account/callback?error=access_denied&state=y', '/account/signin?return=https://evil.example/', '/account/recovery-codes?show=../../x', '/account/totp', '/account/nothing-here']) {
    const answer = await agent.request(`${server.issuer}${path}`);
    t.true(answer.status < 500, `${path} answered ${answer.status}`);
    if (path.startsWith('/account/signin')) t.true(answer.headers.get('location')?.startsWith('/auth?'));
  }
});

test('after signing in, a return path outside the account page is never followed', async (t) => {
  const person = await newAccount();
  const agent = new UserAgent();
  const start = await agent.follow(`${server.issuer}/account/signin?return=${encodeURIComponent('//evil.example/account')}`, NOWHERE);
  const page = await submit(agent, start, '/login', { email: person.email, password: person.password }, NOWHERE);
  t.is(page.status, 200);
  t.true(page.url.startsWith(`${server.issuer}/account`));
});
