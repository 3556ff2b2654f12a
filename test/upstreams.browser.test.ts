/**
 * The whole "Continue with ..." flow in a real browser, JavaScript off: Chromium at the demo app,
 * Tessera's sign-in page, a real upstream OpenID provider (a bare oidc-provider on loopback that
 * signs in whoever the test says), consent, and back at the demo app signed in with Tessera's
 * claims. Chromium is required: without it this test fails, it never skips.
 */
import { randomBytes } from 'node:crypto';

import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser } from 'playwright-core';

import { startDemoRp, type RunningDemoRp } from '../examples/demo/rp.ts';
import { CHROMIUM_ARGS, findChromium, freePort } from './helpers/browser.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { startOidcUpstream } from './helpers/upstream-fixtures.ts';

let browser: Browser | undefined;

test.before(async () => {
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
});

test.after.always(() => browser?.close());

async function startStack(t: ExecutionContext): Promise<{ server: TestServer; rp: RunningDemoRp }> {
  for (let attempt = 1; ; attempt++) {
    const rpPort = await freePort();
    const rpUrl = `http://localhost:${rpPort}`;
    const clientSecret = randomBytes(32).toString('base64url');
    const server = await startTestServer({
      clients: [{
        client_id: 'demo-rp', client_secret: clientSecret, client_name: 'Demo App', redirect_uris: [`${rpUrl}/callback`],
        post_logout_redirect_uris: [`${rpUrl}/`], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
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

test('a person signs in to the demo app through Tessera with "Continue with" an upstream provider, without JavaScript', async (t) => {
  t.timeout(90_000);
  if (!browser) {
    t.fail('Chromium was not found (looked for CHROMIUM_PATH, /usr/bin/chromium and chromium on PATH).');
    return;
  }
  const { server, rp } = await startStack(t);
  const upstream = await startOidcUpstream([`${server.issuer}/federation/acme/callback`]);
  t.teardown(() => upstream.close());
  await server.withServices((services) => services.upstreams.create({
    id: 'acme', name: 'Acme ID', issuer: upstream.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret,
  }));
  const email = `upstream-${randomBytes(4).toString('hex')}@example.org`;
  upstream.user = { sub: 'acme-browser-1', email, email_verified: true, name: 'Katherine Johnson' };

  const context = await browser.newContext({ javaScriptEnabled: false });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const failures: string[] = [];
  page.on('response', (response) => {
    if (response.status() >= 500) failures.push(`HTTP ${response.status()} for ${response.url()}`);
  });

  await page.goto(rp.url);
  await page.getByRole('link', { name: 'Sign in with Tessera' }).click();
  await page.waitForURL(`${server.url}/interaction/**`);
  t.is(await page.locator('h1').textContent(), 'Sign in');
  await page.getByRole('button', { name: 'Continue with Acme ID' }).click();

  // Through the upstream and back into the same interaction: consent, then the app.
  await page.waitForSelector('text=wants to access your account');
  t.true(page.url().startsWith(`${server.url}/interaction/`), page.url());
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(`${rp.url}/`);
  t.is((await page.locator('h1').textContent())?.trim(), `Signed in as ${email}`);
  const idTokenName = page.locator('table').first().locator('tr', { has: page.locator('th', { hasText: /^name$/ }) }).locator('td');
  t.is((await idTokenName.textContent())?.trim(), 'Katherine Johnson');
  const amr = page.locator('table').first().locator('tr', { has: page.locator('th', { hasText: /^amr$/ }) }).locator('td');
  t.regex((await amr.textContent()) ?? '', /fed/);
  t.deepEqual(failures, []);
});
