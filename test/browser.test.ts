/**
 * One real browser through the whole "Sign in with Tessera" flow: Chromium (driven by
 * playwright-core) at the demo relying party, Tessera's registration and consent pages, and back at
 * the RP signed in. A second browser context with JavaScript disabled signs the same person in,
 * proving the pages need no script. The demo's "Create an account" (prompt=create) has its own test.
 * One Chromium serves both. Chromium is required: without it these tests fail, they never skip.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';

import { startDemoRp, type RunningDemoRp } from '../examples/demo/rp.ts';
import { CHROMIUM_ARGS, findChromium, freePort } from './helpers/browser.ts';
import { makeTempDir, removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const CHROMIUM_MISSING = 'Chromium was not found (looked for CHROMIUM_PATH, /usr/bin/chromium, chromium on PATH and playwright-core\'s download). `npm test` finds or installs it first (scripts/ensure-chromium.ts); run that, or set CHROMIUM_PATH.';

let browser: Browser | undefined;

test.before(async () => {
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
});

test.after.always(() => browser?.close());

interface Stack {
  server: TestServer;
  rp: RunningDemoRp;
}

/** Tessera with a static client for the demo RP, and the RP itself; retried if the probed port was taken meanwhile. */
async function startStack(t: ExecutionContext): Promise<Stack> {
  for (let attempt = 1; ; attempt++) {
    const rpPort = await freePort();
    const rpUrl = `http://localhost:${rpPort}`;
    const clientSecret = randomBytes(32).toString('base64url');
    const server = await startTestServer({
      clients: [{
        client_id: 'demo-rp',
        client_secret: clientSecret,
        client_name: 'Demo App',
        redirect_uris: [`${rpUrl}/callback`],
        post_logout_redirect_uris: [`${rpUrl}/`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      }],
    });
    t.teardown(async () => {
      await server.close();
      removeDir(server.dataDir);
    });
    try {
      const rp = await startDemoRp({ issuer: server.issuer, clientId: 'demo-rp', clientSecret, port: rpPort });
      t.teardown(() => rp.close());
      return { server, rp };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 3) throw error;
    }
  }
}

/** Fails the test on any Content-Security-Policy violation or script error the page reports. */
function watchForPageErrors(page: Page, problems: string[]): void {
  page.on('console', (message) => {
    // Failed loads are reported with their URL below; the console line for them carries none.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
  });
  page.on('response', (response) => {
    // Browsers ask every origin for a favicon on their own; neither app is obliged to have one.
    if (response.status() >= 400 && new URL(response.url()).pathname !== '/favicon.ico') {
      problems.push(`HTTP ${response.status()} for ${response.url()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

function assertSecurityHeaders(t: ExecutionContext, response: Response, what: string): void {
  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([name, ...values]) => [name!, values]));
  const scriptSources = directives.get('script-src') ?? directives.get('default-src') ?? [];
  t.truthy(csp, `${what}: has a Content-Security-Policy`);
  t.true(scriptSources.length > 0, `${what}: CSP restricts scripts`);
  t.false(scriptSources.includes("'unsafe-inline'"), `${what}: CSP allows no inline script`);
  t.false(scriptSources.includes("'unsafe-eval'"), `${what}: CSP allows no eval`);
  t.deepEqual(directives.get('frame-ancestors'), ["'none'"], `${what}: CSP frame-ancestors 'none'`);
  t.is(headers['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`);
}

// Serial: two stacks and one Chromium at once are too much for a shared 2-core machine.
test.serial('a person registers at Tessera from the demo app, consents, and lands there signed in', async (t) => {
  t.timeout(90_000);
  if (!browser) {
    t.fail(CHROMIUM_MISSING);
    return;
  }
  const started = Date.now();
  const { server, rp } = await startStack(t);
  const shots = makeTempDir('tessera-browser-');
  t.log(`screenshots in ${shots}`);

  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  watchForPageErrors(page, problems);
  const tesseraPages: Response[] = [];
  page.on('response', (response) => {
    if (response.request().isNavigationRequest() && response.url().startsWith(`${server.url}/interaction/`) && response.status() === 200) {
      tesseraPages.push(response);
    }
  });

  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  t.is(await page.locator('h1').textContent(), 'Sign in');
  t.true((await page.locator('.lead').textContent())?.includes('Demo App'), 'the sign-in page names the app');
  await page.screenshot({ path: path.join(shots, 'login.png'), fullPage: true });
  // Show password: a button the script adds, which says what it will do next and keeps focus in the field.
  await page.locator('#password').fill('typed to be seen');
  await page.getByRole('button', { name: 'Show password' }).click();
  t.is(await page.locator('#password').getAttribute('type'), 'text');
  t.true(await page.locator('#password').evaluate((field) => field === document.activeElement));
  await page.getByRole('button', { name: 'Hide password' }).click();
  t.is(await page.locator('#password').getAttribute('type'), 'password');

  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL('**/register');
  const email = `browser-${randomBytes(4).toString('hex')}@example.org`;
  const password = 'correct horse battery staple';
  await page.locator('#email').fill(email);
  await page.locator('#name').fill('Ada Lovelace');
  await page.locator('#password').fill(password);
  await page.locator('#password_confirmation').fill(password);
  await page.screenshot({ path: path.join(shots, 'register.png'), fullPage: true });
  await page.getByRole('button', { name: 'Create account' }).click();

  await page.waitForSelector('text=wants to access your account');
  t.is((await page.locator('h1').textContent())?.trim(), 'Demo App wants to access your account');
  const scopes = await page.locator('ul.scopes li').allTextContents();
  t.deepEqual(scopes.map((s) => s.trim()), [
    'Know who you are when you sign in',
    'See your name',
    'See your email address and whether it is verified',
    'Stay connected to your account when you are not using the app',
  ]);
  await page.screenshot({ path: path.join(shots, 'consent.png'), fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();

  await page.waitForURL(`${rp.url}/`);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${email}`);
  const idTokenEmail = page.locator('table').first().locator('tr', { has: page.locator('th', { hasText: /^email$/ }) }).locator('td');
  t.is((await idTokenEmail.textContent())?.trim(), email, 'the ID token carries the new email');
  const idTokenName = page.locator('table').first().locator('tr', { has: page.locator('th', { hasText: /^name$/ }) }).locator('td');
  t.is((await idTokenName.textContent())?.trim(), 'Ada Lovelace');
  const userinfoEmail = page.locator('table').nth(1).locator('tr', { has: page.locator('th', { hasText: /^email$/ }) }).locator('td');
  t.is((await userinfoEmail.textContent())?.trim(), email, 'userinfo returns the same email');
  await page.screenshot({ path: path.join(shots, 'rp-signed-in.png'), fullPage: true });

  // Login, registration and consent pages each carried the security headers.
  t.true(tesseraPages.length >= 3, `saw ${tesseraPages.length} interaction pages`);
  for (const response of tesseraPages) assertSecurityHeaders(t, response, new URL(response.url()).pathname);

  // RP-initiated logout: Tessera asks, then sends the browser back to the RP with the RP's state.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForSelector('text=Yes, sign me out');
  await page.screenshot({ path: path.join(shots, 'logout.png'), fullPage: true });
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await page.waitForURL(`${rp.url}/`);
  t.is((await page.locator('[role=status]').textContent())?.trim(), 'You signed out of Tessera.');
  t.truthy(await page.getByRole('link', { name: 'Sign in with Tessera' }).count());
  await page.screenshot({ path: path.join(shots, 'rp-signed-out.png'), fullPage: true });

  t.deepEqual(problems, [], 'no CSP violations, script errors or failed loads in the browser');

  // The same person signs in again in a browser without JavaScript.
  const noScript = await browser.newContext({ javaScriptEnabled: false });
  t.teardown(() => noScript.close());
  const plain = await noScript.newPage();
  // The demo app's "Create an account" sends prompt=create: Tessera opens on its registration page.
  await plain.goto(rp.url);
  await plain.getByRole('link', { name: 'Create an account' }).click();
  await plain.waitForURL(`${server.url}/interaction/**`);
  t.is((await plain.locator('h1').textContent())?.trim(), 'Create your account');

  await plain.goto(rp.url);
  await plain.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await plain.waitForURL(`${server.url}/interaction/**`);
  t.is(await plain.locator('.password-toggle').count(), 0, 'without JavaScript, no toggle: a plain password field');
  await plain.locator('#email').fill(email);
  await plain.locator('#password').fill(password);
  await plain.getByRole('button', { name: 'Sign in' }).click();
  await plain.waitForURL((url) => url.href.startsWith(`${rp.url}/`) || url.pathname.startsWith('/interaction/'));
  if (plain.url().startsWith(server.url)) {
    // A new browser session has no grant yet, so Tessera asks again.
    await plain.getByRole('button', { name: 'Allow' }).click();
    await plain.waitForURL(`${rp.url}/`);
  }
  t.is((await plain.locator('h1').textContent())?.trim(), `Signed in as ${email}`);

  t.log(`browser flow took ${Date.now() - started} ms`);
});

test.serial('a person who chooses Create an account at the demo app (prompt=create) registers, consents, and lands there signed in', async (t) => {
  t.timeout(90_000);
  if (!browser) {
    t.fail(CHROMIUM_MISSING);
    return;
  }
  const { server, rp } = await startStack(t);
  const context = await browser.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  watchForPageErrors(page, problems);

  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  t.is((await page.locator('h1').textContent())?.trim(), 'Create your account');
  const email = `create-${randomBytes(4).toString('hex')}@example.org`;
  const password = 'correct horse battery staple';
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(password);
  await page.locator('#password_confirmation').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();

  // Registration came before consent; after consent the registration page must not come back.
  await page.waitForSelector('text=wants to access your account');
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL((url) => url.href.startsWith(`${rp.url}/`) || url.pathname.startsWith('/interaction/'));
  t.is(new URL(page.url()).origin, new URL(rp.url).origin, `ended at ${page.url()}: ${await page.locator('h1').textContent()}`);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${email}`);
  t.deepEqual(problems, [], 'no CSP violations, script errors or failed loads in the browser');
});
