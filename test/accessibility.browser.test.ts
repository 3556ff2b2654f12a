/**
 * Every page in a real browser, checked by axe-core for accessibility problems, in English, German
 * and Japanese: sign-in, registration, second-factor enrolment (with its recovery codes), consent,
 * the second factor, forgot and reset password, the account page, an error page, and sign-out.
 * Zero violations of any rule axe runs by default (WCAG 2.x A and AA, and its best practices).
 * Each language is reached the way people reach it: `ui_locales` from the app, and the browser's
 * own language for pages outside a sign-in. The device pages (RFC 8628) and the admin console's main
 * pages are checked the same way, in English and Japanese, reached by the browser's language.
 * Chromium is required: these tests fail without it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import test from 'ava';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';
import { chromium, type Browser, type Page } from 'playwright-core';

import { CHROMIUM_ARGS, findChromium } from './helpers/browser.ts';
import { runCliJson } from './helpers/cli.ts';
import { linkIn, startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { authorizationRequest, discover, newPerson, RP_CALLBACK, staticClient, type Person } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let server: TestServer;
let mail: MailCatcher;
let config: oidc.Configuration;
let browser: Browser | undefined;
/** A public device client (made with the CLI, as an operator would) and a person who approves it. */
let device: oidc.Configuration;
let devicePerson: Person;

test.before(async () => {
  mail = await startMailCatcher();
  server = await startTestServer({
    clients: [staticClient({ client_name: 'Demo App', tessera_require_mfa: true })],
    env: { SMTP_URL: mail.url },
  });
  config = await discover(server.issuer);
  const created = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Kitchen Radio', '--grant', 'device_code', '--public']);
  await server.host.refresh();
  device = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  devicePerson = newPerson();
  await server.withServices(async ({ accounts, roles }) => {
    await accounts.register({ email: devicePerson.email, password: devicePerson.password });
    // One operator per language, so each run meets the console's demand for a second factor afresh.
    for (const { lang } of CONSOLE_LANGUAGES) {
      await accounts.register({ email: `operator-${lang}@example.org`, password: OPERATOR_PASSWORD });
      await roles.add(`operator-${lang}@example.org`, 'admin');
    }
  });
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
});

test.after.always(async () => {
  await browser?.close();
  await server?.close();
  await mail?.close();
  if (server) removeDir(server.dataDir);
});

interface AxeResult {
  violations: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: unknown[] }> }>;
}

/** axe-core's violations on the page as it is now, one line each (empty when there are none). */
async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP (no inline script) does not govern.
  if (!(await page.evaluate('typeof window.axe !== "undefined"'))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate('window.axe.run(document)') as AxeResult;
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`);
}

const LANGUAGES = [
  { lang: 'en', browserLocale: 'en-US', headings: { login: 'Sign in', consent: 'Demo App wants to access your account' } },
  { lang: 'de', browserLocale: 'de-DE', headings: { login: 'Anmelden', consent: 'Demo App möchte auf Ihr Konto zugreifen' } },
  { lang: 'ja', browserLocale: 'ja-JP', headings: { login: 'サインイン', consent: 'Demo App があなたのアカウントへのアクセスを求めています' } },
] as const;

for (const { lang, browserLocale, headings } of LANGUAGES) {
  test.serial(`every page has no accessibility violations in ${lang}, and is in ${lang}`, async (t) => {
    t.timeout(120_000);
    if (!browser) {
      t.fail('Chromium was not found: `npm test` finds or installs it first (scripts/ensure-chromium.ts); run that, or set CHROMIUM_PATH.');
      return;
    }
    const context = await browser.newContext({ locale: browserLocale, viewport: { width: 900, height: 900 } });
    t.teardown(() => context.close());
    // The test client's redirect URI has no server behind it: the browser is answered here instead.
    await context.route(`${RP_CALLBACK}**`, (route) => route.fulfill({ contentType: 'text/plain', body: 'back at the app' }));
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    const checked: string[] = [];
    // Each page is also photographed, for a person to look at (as browser.test.ts does).
    const shots = makeTempDir(`tessera-a11y-${lang}-`);
    t.log(`screenshots in ${shots}`);

    async function check(name: string): Promise<void> {
      t.is(await page.locator('html').getAttribute('lang'), lang, `${name}: <html lang>`);
      t.deepEqual(await axeViolations(page), [], `${name} (${lang})`);
      await page.screenshot({ path: path.join(shots, `${String(checked.length + 1).padStart(2, '0')}-${name.replaceAll(' ', '-')}.png`), fullPage: true });
      checked.push(name);
    }

    const email = `a11y-${lang}-${Date.now()}@example.org`;
    const password = 'an accessible and rather long passphrase';

    // Sign-in, then registration, from an app that asked for this language.
    await page.goto((await authorizationRequest(config, { ui_locales: lang })).url.href);
    t.is((await page.locator('h1').textContent())?.trim(), headings.login);
    await check('sign-in');
    await page.locator(`a[href$="/register"]`).click();
    await page.waitForURL('**/register');
    await check('registration');
    await page.locator('#email').fill(email);
    await page.locator('#password').fill(password);
    await page.locator('#password_confirmation').fill(password);
    await page.locator('form[action$="/register"] button[type=submit]').click();

    // The app requires a second factor: enrolment, the authenticator app, the recovery codes.
    await page.waitForURL('**/enrol');
    await check('second-factor enrolment');
    await page.locator('a[href$="/enrol/totp"]').click();
    await page.waitForURL('**/enrol/totp');
    await check('authenticator app enrolment');
    const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s/g, '');
    await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret) }));
    await page.locator('form[action$="/enrol/totp"] button[type=submit]').click();
    await page.waitForURL('**/enrol/recovery-codes');
    await check('recovery codes');
    await page.locator('form[action$="/enrol/done"] button[type=submit]').click();

    await page.waitForURL((url) => /\/interaction\/[^/]+$/.test(url.pathname));
    t.is((await page.locator('h1').textContent())?.trim(), headings.consent);
    await check('consent');
    await page.locator('button[value=allow]').click();
    await page.waitForURL(`${RP_CALLBACK}**`);

    // Signing in again asks for the second factor.
    await page.goto((await authorizationRequest(config, { ui_locales: lang, prompt: 'login' })).url.href);
    await page.locator('#email').fill(email);
    await page.locator('#password').fill(password);
    await page.locator('form[action$="/login"] button[type=submit]').click();
    await page.waitForURL('**/second-factor');
    await check('second factor');

    // Outside a sign-in the browser's language counts: forgot password, the reset form.
    await page.goto(`${server.url}/password/forgot`);
    await check('forgot password');
    await page.locator('#email').fill(email);
    await page.locator('form[action="/password/forgot"] button[type=submit]').click();
    await page.waitForURL('**/password/forgot**');
    await check('reset link sent');
    const resetMail = await mail.waitFor((message) => message.to === email && message.text.includes('/password/reset?token='));
    await page.goto(linkIn(resetMail, `${server.issuer}/password/reset?token=`));
    await check('reset password');

    // The account page, through the account's own sign-in.
    await page.goto(`${server.url}/account`);
    await page.waitForURL((url) => url.pathname === '/account' || url.pathname.startsWith('/interaction/'));
    if (page.url().includes('/interaction/')) {
      await page.locator('#email').fill(email);
      await page.locator('#password').fill(password);
      await page.locator('form[action$="/login"] button[type=submit]').click();
      await page.waitForURL((url) => url.pathname === '/account' || url.pathname.endsWith('/second-factor'));
      if (page.url().endsWith('/second-factor')) {
        await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret), timestamp: Date.now() + 30_000 }));
        await page.locator('form[action$="/second-factor/totp"] button[type=submit]').click();
      }
      await page.waitForURL((url) => url.pathname === '/account');
    }
    await check('account');

    await page.goto(`${server.url}/no-such-page`);
    await check('error');

    await page.goto(`${server.url}/session/end?client_id=tessera-account`);
    await check('sign-out');
    await page.locator('button[name=logout]').click();
    await page.waitForURL('**/session/end/success**');
    await check('signed out');

    t.deepEqual(problems, []);
    t.log(`${lang}: ${checked.join(', ')}`);
  });
}

const OPERATOR_PASSWORD = 'an operator with an accessible console';

const CONSOLE_LANGUAGES = [
  { lang: 'en', browserLocale: 'en-US', headings: { overview: 'Overview', people: 'People', apps: 'Apps', upstreams: 'Upstream providers', keys: 'Keys', audit: 'Audit trail' }, refusal: ['Tick the box to confirm first.', 'Tick to confirm'] },
  { lang: 'ja', browserLocale: 'ja-JP', headings: { overview: '概要', people: 'ユーザー', apps: 'アプリ', upstreams: '外部プロバイダー', keys: '鍵', audit: '監査ログ' }, refusal: ['先にチェックボックスにチェックを入れて確認してください。', 'チェックを入れて確認してください'] },
] as const;

const DEVICE_LANGUAGES = [
  { lang: 'en', browserLocale: 'en-GB', done: 'Device connected' },
  { lang: 'ja', browserLocale: 'ja-JP', done: 'デバイスを接続しました' },
] as const;

for (const { lang, browserLocale, done } of DEVICE_LANGUAGES) {
  test.serial(`the device pages have no accessibility violations in ${lang}, and are in ${lang}`, async (t) => {
    t.timeout(120_000);
    if (!browser) {
      t.fail('Chromium was not found: `npm test` finds or installs it first (scripts/ensure-chromium.ts); run that, or set CHROMIUM_PATH.');
      return;
    }
    const context = await browser.newContext({ locale: browserLocale, viewport: { width: 390, height: 844 } });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    async function check(name: string): Promise<void> {
      t.is(await page.locator('html').getAttribute('lang'), lang, `${name}: <html lang>`);
      t.deepEqual(await axeViolations(page), [], `${name} (${lang})`);
    }

    // A code that is not right, then the prefilled one, the confirmation, sign-in and consent, done.
    const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
    await page.goto(started.verification_uri);
    await check('device code form');
    await page.locator('#user_code').fill('BCDF-GHJK');
    await page.locator('form[action="/device"] button[type=submit]').click();
    await page.locator('#form-error').waitFor();
    await check('device code refused');
    await page.goto(started.verification_uri_complete!);
    await page.locator('form[action="/device"] button[type=submit]').click();
    await page.locator('.user-code').waitFor();
    await check('device confirmation');
    await page.locator('button[name=confirm]').click();
    await page.waitForURL('**/interaction/**');
    await page.locator('#email').fill(devicePerson.email);
    await page.locator('#password').fill(devicePerson.password);
    await page.locator('form[action$="/login"] button[type=submit]').click();
    // Consent is asked the first time this person meets the device client (the English run), not after.
    await page.locator('button[value=allow], p.lead[role=status]').first().waitFor();
    if (await page.locator('button[value=allow]').count()) await page.locator('button[value=allow]').click();
    await page.locator('h1', { hasText: done }).waitFor();
    await check('device connected');

    // Another device, denied.
    const denied = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
    await page.goto(denied.verification_uri_complete!);
    await page.locator('form[action="/device"] button[type=submit]').click();
    await page.locator('button[name=abort]').click();
    await page.locator('p.lead[role=status]').waitFor();
    await check('device denied');
    t.deepEqual(problems, []);
  });
}

for (const { lang, browserLocale, headings, refusal } of CONSOLE_LANGUAGES) {
  test.serial(`the admin console's main pages have no accessibility violations in ${lang}, and are in ${lang}`, async (t) => {
    t.timeout(120_000);
    if (!browser) {
      t.fail('Chromium was not found: `npm test` finds or installs it first (scripts/ensure-chromium.ts); run that, or set CHROMIUM_PATH.');
      return;
    }
    const context = await browser.newContext({ locale: browserLocale, viewport: { width: 1000, height: 900 } });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    async function check(name: string, heading?: string): Promise<void> {
      t.is(await page.locator('html').getAttribute('lang'), lang, `${name}: <html lang>`);
      if (heading) t.is((await page.locator('h1').textContent())?.trim(), heading, `${name}: its heading`);
      t.deepEqual(await axeViolations(page), [], `${name} (${lang})`);
    }

    // The console asks for the admin role and a second factor: an authenticator app is set up on the way in.
    const email = `operator-${lang}@example.org`;
    await page.goto(`${server.url}/admin`);
    await page.waitForURL('**/interaction/**');
    await page.locator('#email').fill(email);
    await page.locator('#password').fill(OPERATOR_PASSWORD);
    await page.locator('form[action$="/login"] button[type=submit]').click();
    await page.waitForURL('**/enrol');
    await page.locator('a[href$="/enrol/totp"]').click();
    await page.waitForURL('**/enrol/totp');
    const secret = (await page.locator('#totp-secret').textContent())!.replace(/\s/g, '');
    await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret) }));
    await page.locator('form[action$="/enrol/totp"] button[type=submit]').click();
    await page.waitForURL('**/enrol/recovery-codes');
    await page.locator('form[action$="/enrol/done"] button[type=submit]').click();
    await page.waitForURL(`${server.url}/admin`);
    await check('console overview', headings.overview);

    await page.goto(`${server.url}/admin/people?q=operator-${lang}`);
    await check('console people', headings.people);
    await page.locator(`a:text-is("${email}")`).click();
    await page.waitForURL('**/admin/people/**');
    await check('console person', email);
    // A refused action shows its message beside the box it is about (the browser's own check of the box is skipped to reach the server's).
    await page.locator('form[action$="/reset-factors"]').evaluate((form) => { (form as HTMLFormElement).noValidate = true; });
    await page.locator('form[action$="/reset-factors"] button[type=submit]').click();
    await page.locator('.field-error').waitFor();
    t.deepEqual([(await page.locator('#banner').textContent())?.trim(), (await page.locator('.field-error').textContent())?.trim()], [...refusal]);
    await check('console person, a refused action');

    await page.goto(`${server.url}/admin/apps`);
    await check('console apps', headings.apps);
    await page.locator('a[href^="/admin/apps/"]').first().click();
    await page.waitForURL('**/admin/apps/**');
    await check('console app');
    await page.goto(`${server.url}/admin/upstreams`);
    await check('console upstream providers', headings.upstreams);
    await page.goto(`${server.url}/admin/keys`);
    await check('console keys', headings.keys);
    await page.goto(`${server.url}/admin/audit`);
    await check('console audit trail', headings.audit);
    t.deepEqual(problems, []);
  });
}

test.serial('the check is not vacuous: axe reports an unlabelled field and a page without a language', async (t) => {
  if (!browser) {
    t.fail('Chromium was not found.');
    return;
  }
  const page = await browser.newPage();
  t.teardown(() => page.close());
  await page.setContent('<!DOCTYPE html><html><head><title>x</title></head><body><main><h1>x</h1><input type="text"></main></body></html>');
  const violations = await axeViolations(page);
  t.true(violations.some((line) => line.startsWith('label ')), violations.join('\n'));
  t.true(violations.some((line) => line.startsWith('html-has-lang ')), violations.join('\n'));
});
