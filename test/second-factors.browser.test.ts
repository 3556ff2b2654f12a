/**
 * Second factors in a real browser: Chromium (playwright-core) at the demo app, whose client
 * requires a second factor. People set up an authenticator app (the key read off the page, codes
 * computed by otpauth) or a passkey (Chrome's virtual WebAuthn authenticator through the DevTools
 * protocol), use recovery codes, and sign in with a passkey alone. Chromium is required: without it
 * these tests fail, they never skip.
 */
import { randomBytes } from 'node:crypto';

import test, { type ExecutionContext } from 'ava';
import * as OTPAuth from 'otpauth';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

import { startDemoRp, type RunningDemoRp } from '../examples/demo/rp.ts';
import { ACR_MULTI_FACTOR } from '../src/domain/mfa/assurance.ts';
import { CHROMIUM_ARGS, findChromium, freePort } from './helpers/browser.ts';
import { linkIn, startMailCatcher } from './helpers/mail-catcher.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

/** The same launch as test/browser.test.ts. */



let server: TestServer;
let rp: RunningDemoRp;
let browser: Browser | undefined;

test.before(async () => {
  for (let attempt = 1; ; attempt++) {
    const rpPort = await freePort();
    const rpUrl = `http://localhost:${rpPort}`;
    const clientSecret = randomBytes(32).toString('base64url');
    server = await startTestServer({
      clients: [{
        client_id: 'demo-rp',
        client_secret: clientSecret,
        client_name: 'Demo App',
        redirect_uris: [`${rpUrl}/callback`],
        post_logout_redirect_uris: [`${rpUrl}/`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        tessera_require_mfa: true,
      }],
    });
    try {
      rp = await startDemoRp({ issuer: server.issuer, clientId: 'demo-rp', clientSecret, port: rpPort });
      break;
    } catch (error) {
      await server.close();
      removeDir(server.dataDir);
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 3) throw error;
    }
  }
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
});

test.after.always(async () => {
  await browser?.close();
  await rp?.close();
  await server?.close();
  if (server) removeDir(server.dataDir);
});

function requireBrowser(t: ExecutionContext): Browser {
  if (!browser) throw new Error('Chromium was not found: `npm test` finds or installs it first (scripts/ensure-chromium.ts); run that, or set CHROMIUM_PATH.');
  t.timeout(90_000);
  return browser;
}

/** Script errors and CSP violations fail the test; refused forms (4xx) are checked by the tests themselves. */
function watchForScriptErrors(page: Page, problems: string[]): void {
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

async function openPage(context: BrowserContext, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  watchForScriptErrors(page, problems);
  return page;
}

/** The value of an ID token claim in the demo app's table, parsed when it is JSON. */
async function idTokenClaim(page: Page, name: string): Promise<unknown> {
  const cell = page.locator('table').first().locator('tr', { has: page.locator('th', { hasText: new RegExp(`^${name}$`) }) }).locator('td code');
  const text = (await cell.textContent())?.trim() ?? '';
  return text.startsWith('[') ? JSON.parse(text) : text;
}

/** Consent is remembered per account and app, so the consent page may or may not come: whichever does first. */
async function allowIfAsked(page: Page): Promise<void> {
  const allow = page.getByRole('button', { name: 'Allow' });
  const atApp = page.waitForURL(`${rp.url}/`).then(() => 'app' as const);
  const asked = allow.waitFor().then(() => 'consent' as const);
  // The one that loses the race fails later, when the page moves on or closes: nobody waits for it.
  atApp.catch(() => {});
  asked.catch(() => {});
  if (await Promise.race([atApp, asked]) === 'consent') await allow.click();
  await page.waitForURL(`${rp.url}/`);
}

async function register(page: Page): Promise<{ email: string; password: string }> {
  const email = `mfa-${randomBytes(4).toString('hex')}@example.org`;
  const password = 'unusual tessera passphrase for second factors';
  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL('**/register');
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(password);
  await page.locator('#password_confirmation').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  // The app requires a second factor and the new account has none: Tessera asks to set one up.
  await page.waitForURL('**/enrol');
  return { email, password };
}

async function signInWithPassword(page: Page, person: { email: string; password: string }): Promise<void> {
  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  await page.locator('#email').fill(person.email);
  await page.locator('#password').fill(person.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL('**/second-factor');
}

/** Registers, sets up an authenticator app, saves the recovery codes, and lands signed in at the app. */
async function registerWithAuthenticatorApp(t: ExecutionContext, page: Page) {
  const person = await register(page);
  t.is((await page.locator('h1').textContent())?.trim(), 'Set up a second factor');
  await page.getByRole('link', { name: 'Set up an authenticator app' }).click();
  await page.waitForURL('**/enrol/totp');
  t.true(await page.locator('img.totp-qr').isVisible(), 'the QR code is shown');
  const qr = await page.locator('img.totp-qr').evaluate((image: HTMLImageElement) => ({ loaded: image.complete && image.naturalWidth > 0, src: image.src.slice(0, 22) }));
  t.deepEqual(qr, { loaded: true, src: 'data:image/png;base64,' });
  const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s/g, '');
  await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret) }));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForURL('**/enrol/recovery-codes');
  const codes = (await page.locator('ul.recovery-codes code').allTextContents()).map((code) => code.trim());
  t.is(codes.length, 10);
  await page.getByRole('button', { name: 'I have saved them, continue' }).click();
  await allowIfAsked(page);
  return { ...person, secret, codes };
}

test('a person sets up an authenticator app from its QR code page and signs in with a code it computes', async (t) => {
  const chrome = requireBrowser(t);
  const problems: string[] = [];
  const context = await chrome.newContext();
  t.teardown(() => context.close());
  const page = await openPage(context, problems);

  const person = await registerWithAuthenticatorApp(t, page);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${person.email}`);
  t.deepEqual(await idTokenClaim(page, 'amr'), ['pwd', 'otp', 'mfa']);
  t.is(await idTokenClaim(page, 'acr'), ACR_MULTI_FACTOR);

  // Another browser: password, then a code from the app (the next one: the first is used up).
  const later = await chrome.newContext();
  t.teardown(() => later.close());
  const second = await openPage(later, problems);
  await signInWithPassword(second, person);
  t.is((await second.locator('h1').textContent())?.trim(), 'Confirm it is you');
  await second.locator('#code').fill(OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(person.secret), timestamp: Date.now() + 30_000 }));
  await second.getByRole('button', { name: 'Continue' }).click();
  await allowIfAsked(second);
  t.is((await second.locator('h1').textContent())?.trim(), `Signed in as ${person.email}`);
  t.deepEqual(await idTokenClaim(second, 'amr'), ['pwd', 'otp', 'mfa']);
  t.deepEqual(problems, []);
});

test('a recovery code signs a person in once, and the same code fails the second time', async (t) => {
  const chrome = requireBrowser(t);
  const problems: string[] = [];
  const context = await chrome.newContext();
  t.teardown(() => context.close());
  const person = await registerWithAuthenticatorApp(t, await openPage(context, problems));

  const lost = await chrome.newContext();
  t.teardown(() => lost.close());
  const page = await openPage(lost, problems);
  await signInWithPassword(page, person);
  await page.getByRole('link', { name: 'Use a recovery code' }).click();
  await page.locator('#code').fill(person.codes[0]!);
  await page.getByRole('button', { name: 'Continue' }).click();
  await allowIfAsked(page);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${person.email}`);

  const again = await chrome.newContext();
  t.teardown(() => again.close());
  const retry = await openPage(again, problems);
  await signInWithPassword(retry, person);
  await retry.getByRole('link', { name: 'Use a recovery code' }).click();
  await retry.locator('#code').fill(person.codes[0]!);
  const [refused] = await Promise.all([
    retry.waitForResponse((response) => response.url().endsWith('/second-factor/recovery-code')),
    retry.getByRole('button', { name: 'Continue' }).click(),
  ]);
  t.is(refused.status(), 401);
  t.is((await retry.getByRole('alert').first().textContent())?.trim(), 'That recovery code is not right, or it was already used.');
  t.true(retry.url().startsWith(server.url), 'still at Tessera, not signed in');
  t.deepEqual(problems, []);
});

test('a person creates a passkey with the browser\'s authenticator and later signs in with it alone', async (t) => {
  const chrome = requireBrowser(t);
  const problems: string[] = [];
  const context = await chrome.newContext();
  t.teardown(() => context.close());
  const page = await openPage(context, problems);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });

  const person = await register(page);
  await page.locator('#passkey-name').fill('Test laptop');
  await page.getByRole('button', { name: 'Create a passkey' }).click();
  await page.waitForURL('**/enrol/recovery-codes');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  t.is(credentials.length, 1);
  t.true(credentials[0]!.isResidentCredential, 'a discoverable credential, so it can sign in without an email');
  await page.getByRole('button', { name: 'I have saved them, continue' }).click();
  await allowIfAsked(page);
  t.deepEqual(await idTokenClaim(page, 'amr'), ['pwd', 'hwk', 'user', 'mfa']);

  const stored = await server.withServices((services) => services.accounts.findByEmail(person.email));
  t.is(stored!.passkeys.length, 1);
  t.is(stored!.passkeys[0]!.name, 'Test laptop');

  // Signed out everywhere (cookies gone), the passkey alone signs the person in: no email, no password.
  await context.clearCookies();
  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await allowIfAsked(page);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${person.email}`);
  t.deepEqual(await idTokenClaim(page, 'amr'), ['hwk', 'user', 'mfa']);
  t.is(await idTokenClaim(page, 'acr'), ACR_MULTI_FACTOR);
  const used = await server.withServices((services) => services.accounts.findByEmail(person.email));
  t.true(used!.passkeys[0]!.counter >= stored!.passkeys[0]!.counter);
  t.truthy(used!.passkeys[0]!.lastUsedAt);

  // And as the second factor after a password.
  await context.clearCookies();
  await signInWithPassword(page, person);
  await page.getByRole('button', { name: 'Use my passkey' }).click();
  await allowIfAsked(page);
  t.deepEqual(await idTokenClaim(page, 'amr'), ['pwd', 'hwk', 'user', 'mfa']);
  t.deepEqual(problems, []);
});

test('a passkey a password thief added on the account page is removed by the owner\'s password reset and no longer signs in', async (t) => {
  const chrome = requireBrowser(t);
  const mail = await startMailCatcher();
  const own = await startTestServer({ env: { SMTP_URL: mail.url } });
  t.teardown(async () => {
    await own.close();
    removeDir(own.dataDir);
    await mail.close();
  });
  const owner = { email: `owner-${randomBytes(4).toString('hex')}@example.org`, password: 'the owner\'s leaked passphrase' };
  await own.withServices(({ accounts }) => accounts.register(owner));

  // The thief signs in to the account page with the password alone (the account has no second
  // factor yet, so that is its strongest) and adds a passkey on their own authenticator.
  const problems: string[] = [];
  const thiefContext = await chrome.newContext();
  t.teardown(() => thiefContext.close());
  const thief = await openPage(thiefContext, problems);
  const cdp = await thiefContext.newCDPSession(thief);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
  await thief.goto(`${own.url}/account`);
  await thief.locator('#email').fill(owner.email);
  await thief.locator('#password').fill(owner.password);
  await thief.getByRole('button', { name: 'Sign in', exact: true }).click();
  await thief.waitForURL(`${own.url}/account`);
  await thief.locator('#passkey-name').fill('Not yours');
  await thief.getByRole('button', { name: 'Add a passkey' }).click();
  await thief.waitForURL('**/account/recovery-codes**');
  const notice = await mail.waitFor((message) => message.to === owner.email && /was added/.test(message.subject));
  t.regex(notice.text, /A passkey \("Not yours"\) was added/, 'the owner is told');

  // The owner resets the password; the reset form lists the new passkey, ticked.
  const ownerContext = await chrome.newContext();
  t.teardown(() => ownerContext.close());
  const page = await openPage(ownerContext, problems);
  await own.withServices(({ passwordReset }) => passwordReset.request(owner.email));
  const resetMail = await mail.waitFor((message) => message.to === owner.email && message.subject === 'Reset your password');
  await page.goto(linkIn(resetMail, `${own.issuer}/password/reset?token=`));
  const box = page.getByRole('checkbox', { name: /Remove Passkey "Not yours", added/ });
  t.true(await box.isChecked(), 'ticked by default');
  await page.locator('#password').fill('the owner takes it back');
  await page.locator('#password_confirmation').fill('the owner takes it back');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.waitForURL('**/password/reset/done**');
  t.regex(await page.locator('main, body').first().innerText(), /One sign-in method was removed/);

  // The thief's passkey no longer signs in alone.
  await thiefContext.clearCookies();
  await thief.goto(`${own.url}/account`);
  await thief.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await thief.locator('#form-error, .alert[role="alert"]:not([hidden])').first().waitFor();
  t.regex(await thief.locator('body').innerText(), /This passkey is not registered here/);
  t.regex(new URL(thief.url()).pathname, /^\/interaction\//, 'still on the sign-in page');
  const stored = await own.withServices(({ accounts }) => accounts.findByEmail(owner.email));
  t.deepEqual(stored!.passkeys, []);
  t.deepEqual(problems, []);
});
