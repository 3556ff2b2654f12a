/**
 * Second factors over HTTP, with JavaScript off: authenticator-app codes (enrolment, sign-in,
 * replay), recovery codes, codes by email through a real SMTP server on loopback, and what the ID
 * token says about it all (amr, acr). Clients that require a second factor send people without one
 * to enrolment, and step up sessions that signed in with a password alone.
 */

import test from 'ava';
import * as OTPAuth from 'otpauth';
import type * as oidc from 'openid-client';
import { authorizationCodeGrant } from 'openid-client';

import { ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR } from '../src/domain/mfa/assurance.ts';
import { runCliJson } from './helpers/cli.ts';
import { startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { authorizationRequest, discover, newPerson, RP_CALLBACK, staticClient, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { softPasskey } from './helpers/soft-passkey.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

let server: TestServer;
let mail: MailCatcher;
let plainRp: oidc.Configuration;
let mfaRp: oidc.Configuration;

test.before(async () => {
  mail = await startMailCatcher();
  server = await startTestServer({
    env: { SMTP_URL: mail.url, RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: '50/300' },
    clients: [staticClient(), staticClient({ client_id: 'mfa-rp', client_name: 'Strict App', tessera_require_mfa: true })],
  });
  plainRp = await discover(server.issuer);
  mfaRp = await discover(server.issuer, staticClient({ client_id: 'mfa-rp' }));
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
  await mail?.close();
});

async function createAccount(person: Person = newPerson()): Promise<Person & { sub: string }> {
  const account = await server.withServices((services) => services.accounts.register({ email: person.email, password: person.password }));
  return { ...person, sub: account.sub };
}

/** The current TOTP code, or the one `stepsAhead` steps on (still inside the ±1 step window). */
function totpCode(secret: string, stepsAhead = 0): string {
  return OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret), timestamp: Date.now() + stepsAhead * 30_000 });
}

function pathOf(page: Page): string {
  return new URL(page.url).pathname;
}

interface Flow {
  agent: UserAgent;
  page: Page;
  finish(page: Page): Promise<oidc.TokenEndpointResponse & { claims(): oidc.IDToken | undefined }>;
}

/** Starts an authorization request and returns the first Tessera page it lands on. */
async function start(config: oidc.Configuration, agent = new UserAgent(), parameters: Record<string, string> = {}): Promise<Flow> {
  const request = await authorizationRequest(config, { scope: 'openid email', ...parameters });
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  return {
    agent,
    page,
    async finish(last) {
      let current = last;
      if (current.status === 200 && current.body.includes('/consent"')) current = await submit(agent, current, '/consent', { decision: 'allow' });
      if (!current.url.startsWith(RP_CALLBACK)) throw new Error(`expected the RP callback, got ${current.status} ${current.url}:\n${current.body.slice(0, 1500)}`);
      return authorizationCodeGrant(config, new URL(current.url), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true });
    },
  };
}

/** Follows one form post without following redirects, so the test sees each step's address. */
async function post(agent: UserAgent, page: Page, actionPart: string, values: Record<string, string>): Promise<Page> {
  const form = readForm(page.body, actionPart);
  return agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, ...values } });
}

async function get(agent: UserAgent, from: Page, location: string): Promise<Page> {
  return agent.follow(new URL(location, from.url).href, RP_CALLBACK);
}

/** Sets up an authenticator app from the enrolment page; returns the secret and the page after (recovery codes). */
async function enrolTotp(agent: UserAgent, enrolPage: Page): Promise<{ secret: string; codes: string[]; after: Page }> {
  t_assert(pathOf(enrolPage).endsWith('/enrol'), `expected the enrolment page, got ${enrolPage.url}`);
  const setup = await get(agent, enrolPage, `${pathOf(enrolPage)}/totp`);
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(setup.body)?.[1]?.replace(/ /g, '');
  t_assert(secret, 'the setup page shows the key');
  t_assert(/<img class="totp-qr" src="data:image\/png;base64,/.test(setup.body), 'the setup page shows a QR code');
  const confirmed = await post(agent, setup, '/enrol/totp', { code: totpCode(secret!) });
  t_assert(confirmed.status === 303, `confirming answers 303, got ${confirmed.status}: ${confirmed.body.slice(0, 500)}`);
  const codesPage = await get(agent, confirmed, confirmed.headers.get('location')!);
  const codes = [...codesPage.body.matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((match) => match[1]!);
  const after = await submit(agent, codesPage, '/enrol/done', {});
  return { secret: secret!, codes, after };
}

function t_assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Signs in with the password and lands on the second-factor page. */
async function passwordStep(config: oidc.Configuration, person: Person, agent = new UserAgent(), parameters: Record<string, string> = {}) {
  const flow = await start(config, agent, parameters);
  const page = await submit(agent, flow.page, '/login', { email: person.email, password: person.password });
  return { ...flow, page };
}

test('discovery advertises both assurance levels and the acr and amr claims', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, string[]>;
  t.deepEqual(metadata.acr_values_supported, [ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR]);
  t.true(metadata.claims_supported!.includes('acr'));
  t.true(metadata.claims_supported!.includes('amr'));
});

test('a password alone gives amr pwd and acr loa:1 in the ID token', async (t) => {
  const person = await createAccount();
  const flow = await start(plainRp);
  const tokens = await flow.finish(await submit(flow.agent, flow.page, '/login', { email: person.email, password: person.password }));
  t.deepEqual(tokens.claims()!.amr, ['pwd']);
  t.is(tokens.claims()!.acr, ACR_SINGLE_FACTOR);
});

test('a client that requires a second factor sends a person without one to set up an authenticator app, then says mfa in the ID token', async (t) => {
  const person = await createAccount();
  const flow = await passwordStep(mfaRp, person);
  t.true(pathOf(flow.page).endsWith('/enrol'), 'the enrolment page, not the app');
  t.regex(flow.page.body, /Strict App<\/strong> asks for more than a password/);
  const { codes, after } = await enrolTotp(flow.agent, flow.page);
  t.is(codes.length, 10, 'ten recovery codes are shown once');
  t.is(new Set(codes).size, 10);
  const tokens = await flow.finish(after);
  t.deepEqual(tokens.claims()!.amr, ['pwd', 'otp', 'mfa']);
  t.is(tokens.claims()!.acr, ACR_MULTI_FACTOR);
  t.is(tokens.claims()!.sub, person.sub);

  const stored = await server.withServices((services) => services.accounts.findBySub(person.sub));
  t.is(stored!.recoveryCodes.length, 10);
  t.false(stored!.recoveryCodes.some((hash) => codes.includes(hash)), 'only digests are stored');
  t.false(JSON.stringify(stored!.totp).includes(codes[0]!));
});

test('an authenticator-app code signs in once and is refused when replayed', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const { secret, after } = await enrolTotp(enrolment.agent, enrolment.page);
  await enrolment.finish(after);

  // Any client: an account with a second factor is always asked for it.
  const first = await passwordStep(plainRp, person);
  t.true(pathOf(first.page).endsWith('/second-factor'));
  t.regex(first.page.body, /Code from your authenticator app/);
  const code = totpCode(secret, 1);
  const accepted = await submit(first.agent, first.page, '/second-factor/totp', { code: code.replace(/(\d{3})/, '$1 ') });
  const tokens = await first.finish(accepted);
  t.deepEqual(tokens.claims()!.amr, ['pwd', 'otp', 'mfa']);
  t.is(tokens.claims()!.acr, ACR_MULTI_FACTOR);

  const second = await passwordStep(plainRp, person);
  const replayed = await post(second.agent, second.page, '/second-factor/totp', { code });
  t.is(replayed.status, 401);
  t.regex(replayed.body, /That code is not right, or it was already used/);
  const older = await post(second.agent, replayed, '/second-factor/totp', { code: totpCode(secret) });
  t.is(older.status, 401, 'a code older than the last one used is refused too');
});

test('a recovery code signs in once; the second use fails', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const { codes, after } = await enrolTotp(enrolment.agent, enrolment.page);
  await enrolment.finish(after);

  const first = await passwordStep(plainRp, person);
  const choice = await get(first.agent, first.page, `${pathOf(first.page)}?method=recovery-code`);
  t.regex(choice.body, /Recovery code/);
  const tokens = await first.finish(await submit(first.agent, choice, '/second-factor/recovery-code', { code: codes[3]!.toUpperCase() }));
  t.deepEqual(tokens.claims()!.amr, ['pwd', 'otp', 'mfa']);

  const second = await passwordStep(plainRp, person);
  const again = await get(second.agent, second.page, `${pathOf(second.page)}?method=recovery-code`);
  const refused = await post(second.agent, again, '/second-factor/recovery-code', { code: codes[3]! });
  t.is(refused.status, 401);
  t.regex(refused.body, /That recovery code is not right, or it was already used/);
  const left = await server.withServices((services) => services.secondFactors.summary(person.sub));
  t.is(left.recoveryCodesLeft, 9);
});

test('a session that signed in with a password alone steps up with only the second factor for a client that requires one', async (t) => {
  const person = await createAccount();
  const agent = new UserAgent();
  const single = await start(plainRp, agent);
  const tokens = await single.finish(await submit(agent, single.page, '/login', { email: person.email, password: person.password }));
  t.is(tokens.claims()!.acr, ACR_SINGLE_FACTOR);

  // No factor yet: the same browser going to the strict app is taken to enrolment, without the password again.
  const strict = await start(mfaRp, agent);
  t.true(pathOf(strict.page).endsWith('/enrol'), `went to ${strict.page.url}`);
  const { secret, after } = await enrolTotp(agent, strict.page);
  const stepped = await strict.finish(after);
  t.deepEqual(stepped.claims()!.amr, ['pwd', 'otp', 'mfa']);
  t.is(stepped.claims()!.acr, ACR_MULTI_FACTOR);

  // A second browser: password only at the plain app is impossible now (the account has a factor),
  // so a single-factor session is made by signing in before the factor existed.
  const other = await createAccount();
  const otherAgent = new UserAgent();
  const plain = await start(plainRp, otherAgent);
  await plain.finish(await submit(otherAgent, plain.page, '/login', { email: other.email, password: other.password }));
  const enrolment = await server.withServices((services) => services.secondFactors.startTotpEnrolment(other.sub));
  await server.withServices((services) => services.secondFactors.confirmTotp(other.sub, totpCode(enrolment.secret)));
  const stepUp = await start(mfaRp, otherAgent);
  t.true(pathOf(stepUp.page).endsWith('/second-factor'), `went to ${stepUp.page.url}`);
  t.notRegex(stepUp.page.body, /name="password"/);
  const result = await stepUp.finish(await submit(otherAgent, stepUp.page, '/second-factor/totp', { code: totpCode(enrolment.secret, 1) }));
  t.is(result.claims()!.acr, ACR_MULTI_FACTOR);
  t.is(result.claims()!.sub, other.sub);
  t.truthy(secret);
});

test('acr_values=urn:tessera:loa:2 requires a second factor from any client; accepting loa:1 too does not', async (t) => {
  const person = await createAccount();
  const agent = new UserAgent();
  const lenient = await start(plainRp, agent, { acr_values: `${ACR_SINGLE_FACTOR} ${ACR_MULTI_FACTOR}` });
  const single = await lenient.finish(await submit(agent, lenient.page, '/login', { email: person.email, password: person.password }));
  t.is(single.claims()!.acr, ACR_SINGLE_FACTOR);

  const strict = await start(plainRp, agent, { acr_values: ACR_MULTI_FACTOR });
  t.true(pathOf(strict.page).endsWith('/enrol'), `went to ${strict.page.url}`);
  const { after } = await enrolTotp(agent, strict.page);
  const tokens = await strict.finish(after);
  t.is(tokens.claims()!.acr, ACR_MULTI_FACTOR);

  // prompt=none cannot step up: the app hears login_required.
  const fresh = new UserAgent();
  const other = await createAccount();
  const plain = await start(plainRp, fresh);
  await plain.finish(await submit(fresh, plain.page, '/login', { email: other.email, password: other.password }));
  const silent = await start(plainRp, fresh, { acr_values: ACR_MULTI_FACTOR, prompt: 'none' });
  t.is(new URL(silent.page.url).searchParams.get('error'), 'login_required');
});

test('a code by email, sent through SMTP, signs in once', async (t) => {
  const person = await createAccount();
  // Turning codes by email on proves the mailbox: the enrolment page sends a code first.
  const enrolment = await passwordStep(mfaRp, person);
  t.regex(enrolment.page.body, /Get codes by email/);
  const emailSetup = await get(enrolment.agent, enrolment.page, `${pathOf(enrolment.page)}/email`);
  const sent = await submit(enrolment.agent, emailSetup, '/enrol/email/send', {});
  const setupMail = await mail.waitFor((message) => message.to === person.email && /is your Tessera code/.test(message.subject));
  const setupCode = /code is (\d{6})/.exec(setupMail.text)![1]!;
  const wrong = await post(enrolment.agent, sent, '/enrol/email', { code: setupCode === '000000' ? '111111' : '000000' });
  t.is(wrong.status, 400);
  const enrolled = await submit(enrolment.agent, wrong, '/enrol/email', { code: setupCode });
  const codesPage = enrolled;
  const tokens = await enrolment.finish(await submit(enrolment.agent, codesPage, '/enrol/done', {}));
  t.deepEqual(tokens.claims()!.amr, ['pwd', 'otp', 'mca', 'mfa']);
  const verified = await server.withServices((services) => services.accounts.findBySub(person.sub));
  t.true(verified!.emailVerified, 'a code that reached the mailbox verifies the address');

  const before = mail.messages.length;
  const signIn = await passwordStep(plainRp, person);
  t.regex(signIn.page.body, /Email me a code/);
  const askedFor = await submit(signIn.agent, signIn.page, '/second-factor/email-code/send', {});
  // The code, not the notice that codes by email were turned on.
  const codeMail = await mail.waitFor((message) => mail.messages.indexOf(message) >= before && message.to === person.email && /is your Tessera code/.test(message.subject));
  const code = /code is (\d{6})/.exec(codeMail.text)![1]!;
  t.regex(askedFor.body, /Code we emailed to p/);
  const signedIn = await signIn.finish(await submit(signIn.agent, askedFor, '/second-factor/email-code', { code }));
  t.deepEqual(signedIn.claims()!.amr, ['pwd', 'otp', 'mca', 'mfa']);

  const again = await passwordStep(plainRp, person);
  const page = await get(again.agent, again.page, `${pathOf(again.page)}?method=email-code&sent=1`);
  const replayed = await post(again.agent, page, '/second-factor/email-code', { code });
  t.is(replayed.status, 401);
});

test('an emailed code allows five guesses, then is gone', async (t) => {
  const person = await createAccount();
  await server.withServices(async (services, store) => {
    await store.accounts.update(person.sub, { emailOtp: true, emailVerified: true });
    await services.secondFactors.sendEmailCode(person.sub);
  });
  const message = await mail.waitFor((candidate) => candidate.to === person.email);
  const code = /code is (\d{6})/.exec(message.text)![1]!;
  const wrongCode = code === '123456' ? '654321' : '123456';
  const results = await server.withServices(async (services) => {
    const outcomes: boolean[] = [];
    for (let guess = 0; guess < 5; guess += 1) outcomes.push(await services.secondFactors.verifyEmailCode(person.sub, wrongCode));
    outcomes.push(await services.secondFactors.verifyEmailCode(person.sub, code));
    return outcomes;
  });
  t.deepEqual(results, [false, false, false, false, false, false]);
});

test('an authenticator app being set up does not count as a second factor, and its setup page keeps its key when shown again', async (t) => {
  const person = await createAccount();
  const first = await server.withServices((services) => services.secondFactors.startTotpEnrolment(person.sub));
  const again = await server.withServices((services) => services.secondFactors.startTotpEnrolment(person.sub));
  t.is(again.secret, first.secret);
  t.regex(first.otpauthUri, /^otpauth:\/\/totp\/Tessera:.+\?.*issuer=Tessera/);
  const flow = await start(plainRp);
  const page = await submit(flow.agent, flow.page, '/login', { email: person.email, password: person.password });
  t.true(page.url.startsWith(RP_CALLBACK) || page.body.includes('/consent"'), 'signed in with the password alone');
});

test('every second-factor page refuses bad input with a 4xx and a message, never a 500', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const base = new URL(pathOf(enrolment.page).replace(/\/enrol$/, ''), enrolment.page.url).href;
  const csrf = readForm(enrolment.page.body, '/abort').fields._csrf!;
  const agent = enrolment.agent;

  const attempts: Array<[string, Record<string, string>]> = [
    ['/enrol/totp', { _csrf: csrf, code: 'abcdef' }],
    ['/enrol/totp', { _csrf: csrf, code: '1'.repeat(5000) }],
    ['/enrol/passkey', { _csrf: csrf, credential: 'not json' }],
    ['/enrol/passkey', { _csrf: csrf, credential: '{"id":"x","rawId":"x","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"AA"}}' }],
    ['/enrol/passkey', { _csrf: csrf, credential: JSON.stringify({ id: 'x', rawId: 'x', type: 'public-key', response: { clientDataJSON: Buffer.from('{"challenge":"nope"}').toString('base64url'), attestationObject: 'AA' } }) }],
    ['/enrol/email', { _csrf: csrf, code: '12' }],
    ['/second-factor/totp', { _csrf: csrf, code: '123456' }],
    ['/passkey', { _csrf: csrf, credential: '[]' }],
    ['/passkey', { _csrf: csrf, credential: JSON.stringify({ id: 'x', rawId: 'x', type: 'public-key', response: { clientDataJSON: Buffer.from('{"challenge":"nope"}').toString('base64url'), authenticatorData: 'AA', signature: 'AA', userHandle: 'AA' } }) }],
    ['/enrol/totp', { code: '123456' }],
  ];
  for (const [path, form] of attempts) {
    const response = await agent.request(`${base}${path}`, { form });
    t.true(response.status < 500, `${path} ${JSON.stringify(form).slice(0, 80)} answered ${response.status}`);
    t.true(response.status >= 300, `${path} did not succeed`);
  }
  const options = await agent.request(`${base}/enrol/passkey/options`, { form: { _csrf: csrf }, headers: { accept: 'application/json' } });
  t.is(options.status, 200);
  const json = JSON.parse(options.body) as { challenge: string; rp: { id: string }; user: { name: string }; authenticatorSelection: { residentKey: string } };
  t.is(json.rp.id, 'localhost');
  t.is(json.user.name, person.email);
  t.is(json.authenticatorSelection.residentKey, 'required');

  const unknown = await new UserAgent().request(`${server.issuer}/interaction/nope/second-factor`);
  t.true(unknown.status >= 400 && unknown.status < 500);
  const noPending = await start(plainRp);
  const skipped = await noPending.agent.request(new URL(`${pathOf(noPending.page)}/second-factor`, noPending.page.url).href);
  t.is(skipped.status, 302, 'no password yet: back to the login page');
  const finishEarly = await noPending.agent.request(new URL(`${pathOf(noPending.page)}/enrol/done`, noPending.page.url).href, { form: { _csrf: readForm(noPending.page.body, '/login').fields._csrf! } });
  t.is(finishEarly.status, 303);
  t.false((finishEarly.headers.get('location') ?? '').includes('/resume'), 'cannot finish a sign-in whose password was never checked');
  const script = await noPending.agent.request(new URL(`${pathOf(noPending.page)}/second-factor/passkey/options`, noPending.page.url).href, {
    form: { _csrf: readForm(noPending.page.body, '/login').fields._csrf! },
    headers: { accept: 'application/json' },
  });
  t.is(script.status, 400, 'the passkey script gets a JSON error, not a redirect to a page');
  t.is((JSON.parse(script.body) as { error: string }).error, 'interaction_expired');
});

test('an administrator removes every second factor of someone who lost them with tessera users reset-factors', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const { after } = await enrolTotp(enrolment.agent, enrolment.page);
  await enrolment.finish(after);

  const reset = await runCliJson(server.cliEnv, ['users', 'reset-factors', person.email.toUpperCase()]);
  t.deepEqual(reset, { sub: person.sub, email: person.email, second_factors: false });
  const summary = await server.withServices((services) => services.secondFactors.summary(person.sub));
  t.like(summary, { enabled: false, totp: false, recoveryCodesLeft: 0, passkeys: [] });

  // The strict app asks them to set a factor up again.
  const again = await passwordStep(mfaRp, person);
  t.true(pathOf(again.page).endsWith('/enrol'));
});

test('the owner is mailed when a second factor is added during a sign-in and when it is removed on the account page', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const { codes, after } = await enrolTotp(enrolment.agent, enrolment.page);
  await enrolment.finish(after);
  const added = await mail.waitFor((message) => message.to === person.email && /was added/.test(message.subject));
  t.is(added.subject, 'A sign-in method was added to your account');
  t.regex(added.text, /An authenticator app was added to the account/);
  t.regex(added.text, /remove the sign-in methods added in the last 7 days/);
  t.true(added.text.includes(`${server.issuer}/password/forgot`));

  // The account page, signed in with the password and a recovery code (the factor the account has).
  const agent = new UserAgent();
  const login = await agent.follow(`${server.issuer}/account`, 'never:');
  const challenge = await submit(agent, login, '/login', { email: person.email, password: person.password }, 'never:');
  const recovery = await get(agent, challenge, `${pathOf(challenge)}?method=recovery-code`);
  const page = await submit(agent, recovery, '/second-factor/recovery-code', { code: codes[0]! }, 'never:');
  t.is(new URL(page.url).pathname, '/account');
  const removed = await post(agent, page, 'action="/account/totp/remove"', { confirm: 'yes' });
  t.is(removed.status, 303);
  const notice = await mail.waitFor((message) => message.to === person.email && /was removed/.test(message.subject));
  t.regex(notice.text, /An authenticator app was removed from the account/);
});

test('second-factor checks are rate-limited per account: 429 with Retry-After', async (t) => {
  const limited = await startTestServer({ env: { RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: '3/300' }, clients: [staticClient({ tessera_require_mfa: true })] });
  t.teardown(async () => {
    await limited.close();
    removeDir(limited.dataDir);
  });
  const person = newPerson();
  const account = await limited.withServices((services) => services.accounts.register({ email: person.email, password: person.password }));
  await limited.withServices(async (services) => {
    const { secret } = await services.secondFactors.startTotpEnrolment(account.sub);
    await services.secondFactors.confirmTotp(account.sub, totpCode(secret));
  });
  const config = await discover(limited.issuer, staticClient());
  const flow = await passwordStep(config, person);
  const statuses: number[] = [];
  let last = flow.page;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const form = readForm(flow.page.body, '/second-factor/totp');
    last = await flow.agent.request(new URL(form.action, flow.page.url).href, { form: { ...form.fields, code: '000000' } });
    statuses.push(last.status);
  }
  t.deepEqual(statuses, [401, 401, 401, 429]);
  t.regex(last.headers.get('retry-after') ?? '', /^\d+$/);
  t.regex(last.body, /Too many attempts/);
});

test('an account with a passkey and an authenticator app is offered the passkey first, the app among the other ways', async (t) => {
  const person = await createAccount();
  const enrolment = await passwordStep(mfaRp, person);
  const { after } = await enrolTotp(enrolment.agent, enrolment.page);
  await enrolment.finish(after);
  const key = softPasskey();
  await server.withServices((_services, store) => store.accounts.update(person.sub, { passkeys: [key.passkey] }));

  const step = await passwordStep(plainRp, person);
  t.true(pathOf(step.page).endsWith('/second-factor'));
  t.regex(step.page.body, /data-passkey="authenticate" data-options="\/interaction\/[^"]+\/second-factor\/passkey\/options"/);
  t.notRegex(step.page.body, /action="[^"]*\/second-factor\/totp"/, 'the code form is one choice away, not the default');
  t.regex(step.page.body, /href="[^"]*second-factor\?method=totp"/);
});
