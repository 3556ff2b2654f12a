/**
 * The device flow's pages in a real browser: Chromium opens `verification_uri_complete` as a person
 * would after scanning the device's QR code, checks the prefilled code, confirms the device, signs
 * in and allows; the device (openid-client) gets its tokens. The pages run under the strict CSP with
 * nothing refused. Chromium is required: without it this test fails, it never skips.
 */
import test from 'ava';
import * as oidc from 'openid-client';
import { chromium, type Browser } from 'playwright-core';

import { runCliJson } from './helpers/cli.ts';
import { CHROMIUM_ARGS, findChromium } from './helpers/browser.ts';
import { newPerson } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

let browser: Browser | undefined;
let server: TestServer;

test.before(async () => {
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  server = await startTestServer({ env: { DEVICE_POLL_INTERVAL: '1' } });
});

test.after.always(async () => {
  await browser?.close();
  await server?.close();
  if (server) removeDir(server.dataDir);
});

test('a person connects a device in Chromium from the prefilled code to the done page, and the device gets its tokens', async (t) => {
  if (!browser) return t.fail('Chromium was not found (CHROMIUM_PATH, /usr/bin/chromium or chromium on PATH)');
  const person = newPerson();
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password, name: person.name }).then(() => undefined));
  const created = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Kitchen Radio', '--grant', 'device_code', '--public', '--json']);
  await server.host.refresh();
  const device = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid email' });
  // Seen once in a full-suite run only: the device got invalid_grant. Keep what the token endpoint
  // refused (other than pending and slow_down), to say why if it happens again.
  const refusedGrants: string[] = [];
  server.host.provider.on('grant.error', (_ctx: unknown, error: { error?: string; error_detail?: string; message: string }) => {
    if (error.error !== 'authorization_pending' && error.error !== 'slow_down') refusedGrants.push(`${error.error}: ${error.error_detail ?? error.message}`);
  });
  const tokens = oidc.pollDeviceAuthorizationGrant(device, started).catch((error: unknown) => {
    throw new Error(`the device's polling failed (${String(error)}); the token endpoint refused: ${refusedGrants.join('; ') || 'nothing it reported'}`, { cause: error });
  });

  const context = await browser.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  const refused: string[] = [];
  page.on('console', (message) => {
    // Failed loads are checked by URL below (browsers ask every origin for a favicon on their own).
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) refused.push(message.text());
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && new URL(response.url()).pathname !== '/favicon.ico') refused.push(`${response.status()} ${response.url()}`);
  });

  await page.goto(started.verification_uri_complete!);
  t.is(await page.inputValue('#user_code'), started.user_code);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Connect Kitchen Radio?');
  t.true((await page.textContent('.user-code'))?.includes(started.user_code));
  await page.click('button[name=confirm]');
  await page.fill('#email', person.email);
  await page.fill('#password', person.password);
  await page.click('button.primary[type=submit]');
  await page.waitForSelector('text=wants to access your account');
  await page.click('button[value=allow]');
  await page.waitForSelector('text=Device connected');

  const granted = await tokens;
  t.is(granted.claims()?.email, person.email);
  t.deepEqual(refused, [], 'nothing on the pages was refused by the CSP or failed to load');
});
