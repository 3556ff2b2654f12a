/**
 * Accounts without a password hash, as an upstream provider or an email link will create them:
 * made here through the store, with a passkey in software (helpers/soft-passkey.ts) as their way in.
 * A real server; the sign-in, recovery and account pages driven over HTTP; openid-client as the RP.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { INVALID_CREDENTIALS } from '../src/domain/accounts.ts';
import { authorizationRequest, discover, RP_CALLBACK, staticClient, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { softPasskey, type SoftPasskey } from './helpers/soft-passkey.ts';
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

interface HashlessAccount {
  sub: string;
  email: string;
  key: SoftPasskey;
}

/** An account with a passkey and no password, written through the store as another first factor would. */
async function hashlessAccount(): Promise<HashlessAccount> {
  counter += 1;
  const account = { sub: `hashless-${counter}-${Date.now()}`, email: `hashless${counter}.${Date.now()}@example.com`, key: softPasskey() };
  await server.withServices(async (_services, store) => {
    await store.accounts.create({ sub: account.sub, email: account.email, emailVerified: true, name: `Hashless ${counter}`, disabled: false });
    await store.accounts.update(account.sub, { passkeys: [account.key.passkey] });
  });
  return account;
}

/** An ordinary account, registered with a password, to compare with. */
async function accountWithPassword(): Promise<{ email: string }> {
  counter += 1;
  const email = `withpassword${counter}.${Date.now()}@example.com`;
  await server.withServices(({ accounts }) => accounts.register({ email, password: `an ordinary passphrase number ${counter}` }));
  return { email };
}

async function storedAccount(sub: string) {
  return server.withServices(({ accounts }) => accounts.findBySub(sub));
}

/** On a sign-in page (or the second-factor page): the passkey ceremony, as views/assets/passkeys.js runs it. */
async function signInWithPasskey(agent: UserAgent, login: Page, account: HashlessAccount, stopAt: string, actionPart = '/passkey"'): Promise<Page> {
  const form = readForm(login.body, actionPart);
  const action = new URL(form.action, login.url).href;
  const options = await agent.request(`${action}/options`, { form: { _csrf: form.fields._csrf! }, headers: { accept: 'application/json' } });
  if (options.status !== 200) throw new Error(`passkey options: ${options.status} ${options.body}`);
  const credential = account.key.assert(JSON.parse(options.body) as { challenge: string; rpId?: string }, new URL(server.issuer).origin, account.sub);
  return agent.follow(action, stopAt, { form: { ...form.fields, credential } });
}

test('an account without a password refuses every password exactly as an unknown email is refused, and those guesses lock nothing', async (t) => {
  const account = await hashlessAccount();
  const request = await authorizationRequest(rp);
  const agent = new UserAgent();
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const unknown = await submit(agent, login, '/login', { email: `nobody.${Date.now()}@example.com`, password: 'a password for nobody at all' });
  t.is(unknown.status, 401);
  // "undefined" too: a store that wrote String(undefined) as the hash must not make it a password.
  // (An empty password is answered "Enter your password" before any account is looked up:
  // actionable-errors.test.ts.)
  for (const password of ['a password for nobody at all', 'undefined']) {
    const page = await submit(agent, login, '/login', { email: account.email, password });
    t.is(page.status, unknown.status, JSON.stringify(password));
    t.true(page.body.includes(INVALID_CREDENTIALS), JSON.stringify(password));
    t.is(page.url, unknown.url);
  }
  const after = await storedAccount(account.sub);
  t.is(after?.passwordHash, undefined);
  t.is(after?.failedSignIns, 0);
  t.is(after?.lockedUntil, undefined);
});

test('an account without a password signs in to an app with its passkey alone, as a multi-factor sign-in', async (t) => {
  const account = await hashlessAccount();
  const request = await authorizationRequest(rp);
  const agent = new UserAgent();
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  let page = await signInWithPasskey(agent, login, account, RP_CALLBACK);
  if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' });
  t.true(page.url.startsWith(RP_CALLBACK), `${page.status} ${page.url}`);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url), {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims()!;
  t.is(claims.sub, account.sub);
  t.deepEqual(claims.amr, ['hwk', 'user', 'mfa']);
  t.is(claims.acr, 'urn:tessera:loa:2');
});

test('asking to reset the password of an account without one answers as for any account', async (t) => {
  const account = await hashlessAccount();
  const agent = new UserAgent();
  const forgot = await agent.request(`${server.issuer}/password/forgot`);
  const form = readForm(forgot.body, '/password/forgot');
  const ask = (email: string) => agent.follow(new URL(form.action, forgot.url).href, NOWHERE, { form: { ...form.fields, email } });
  const withoutTokens = (page: Page) => page.body.replace(/name="_csrf" value="[^"]*"/g, '');
  const asked = await ask(account.email);
  const known = await ask((await accountWithPassword()).email);
  t.is(asked.status, 200);
  t.is(asked.status, known.status);
  t.is(withoutTokens(asked), withoutTokens(known));
});

test('the account page of an account without a password sets a first one without asking for a current one, and it then signs in', async (t) => {
  const account = await hashlessAccount();
  const agent = new UserAgent();
  const login = await agent.follow(`${server.issuer}/account`, NOWHERE);
  const page = await signInWithPasskey(agent, login, account, NOWHERE);
  t.is(page.status, 200, page.body.slice(0, 500));
  t.true(page.url.endsWith('/account'), page.url);
  const form = readForm(page.body, 'action="/account/password"');
  t.false('current_password' in form.fields, 'no current password to ask for');
  t.regex(page.body, /Set a password/);

  const password = 'a first password for a passkey person';
  const set = await agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, new_password: password, new_password_confirmation: password } });
  t.is(set.status, 303);
  t.is(set.headers.get('location'), '/account?done=password-set#password');
  const shown = await agent.request(`${server.issuer}/account?done=password-set`);
  t.regex(shown.body, /Your password is set/);
  t.true('current_password' in readForm(shown.body, 'action="/account/password"').fields, 'now there is one to ask for');

  // The password is right now; the passkey the account has makes it ask for a second factor.
  const request = await authorizationRequest(rp);
  const other = new UserAgent();
  const second = await submit(other, await other.follow(request.url.href, RP_CALLBACK), '/login', { email: account.email, password });
  t.is(second.status, 200);
  t.regex(second.url, /\/second-factor$/);
  let done = await signInWithPasskey(other, second, account, RP_CALLBACK, '/second-factor/passkey"');
  if (done.body.includes('/consent"')) done = await submit(other, done, '/consent', { decision: 'allow' });
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true });
  t.is(tokens.claims()?.sub, account.sub);
  t.deepEqual(tokens.claims()?.amr, ['pwd', 'hwk', 'user', 'mfa']);
});
