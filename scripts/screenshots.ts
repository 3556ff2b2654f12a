/**
 * `npm run screenshots`: the sign-in and consent pages as people see them, in languages other than
 * English, for the README. Starts Tessera on a free port with a throwaway data directory and one
 * app, drives Chromium (playwright-core) through a registration with `ui_locales`, and writes
 * docs/screenshots/<page>.<lang>.png, for German and Japanese or the languages named on the command
 * line (`npm run screenshots -- fr es`). Branding joins when the brand settings exist.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';

import { loadConfig } from '../src/config.ts';
import { isLocale, SUPPORTED_LOCALES } from '../src/i18n/locales.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/main.ts';
import { CHROMIUM_ARGS, findChromium } from '../test/helpers/browser.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'docs', 'screenshots');
const LANGUAGES = process.argv.length > 2 ? process.argv.slice(2) : ['de', 'ja'];
const CALLBACK = 'http://localhost:9/callback';

const unknown = LANGUAGES.filter((lang) => !isLocale(lang));
if (unknown.length) {
  process.stderr.write(`screenshots: ${unknown.join(', ')} not supported; choose from ${SUPPORTED_LOCALES.join(', ')}\n`);
  process.exit(1);
}
const executablePath = findChromium();
if (!executablePath) {
  process.stderr.write('screenshots: Chromium was not found; run `node scripts/ensure-chromium.ts` (it finds or installs one), or set CHROMIUM_PATH.\n');
  process.exit(1);
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'tessera-screenshots-'));
const configDir = path.join(dataDir, 'config');
mkdirSync(configDir);
writeFileSync(path.join(configDir, 'clients.json'), JSON.stringify([{
  client_id: 'notes',
  client_secret: 'a-screenshot-secret-that-is-long-enough-0123456789',
  client_name: 'Acme Notes',
  redirect_uris: [CALLBACK],
  client_uri: 'https://notes.example',
  policy_uri: 'https://notes.example/privacy',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
}]));
const config = loadConfig({
  NODE_ENV: 'development', PORT: '0', DATA_DIR: dataDir, CONFIG_DIR: configDir, LOG_LEVEL: 'silent',
  ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1',
});
const server = await startServer(config, createLogger('silent'));
const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
try {
  const rp = await oidc.discovery(new URL(server.issuer), 'notes', 'a-screenshot-secret-that-is-long-enough-0123456789', undefined, { execute: [oidc.allowInsecureRequests] });
  mkdirSync(OUT, { recursive: true });
  for (const lang of LANGUAGES) {
    const context = await browser.newContext({ locale: lang, viewport: { width: 560, height: 760 }, deviceScaleFactor: 1, colorScheme: 'light' });
    await context.route(`${CALLBACK}**`, (route) => route.fulfill({ contentType: 'text/plain', body: 'back at the app' }));
    const page = await context.newPage();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: CALLBACK, scope: 'openid profile email offline_access', ui_locales: lang,
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    });
    await page.goto(url.href);
    await page.screenshot({ path: path.join(OUT, `sign-in.${lang}.png`), fullPage: true });
    await page.locator('a[href$="/register"]').click();
    await page.waitForURL('**/register');
    await page.locator('#email').fill(`ada.${lang}@example.org`);
    await page.locator('#name').fill('Ada Lovelace');
    await page.locator('#password').fill('a long and unusual screenshot passphrase');
    await page.locator('#password_confirmation').fill('a long and unusual screenshot passphrase');
    await page.locator('form[action$="/register"] button[type=submit]').click();
    await page.waitForSelector('button[value=allow]');
    await page.screenshot({ path: path.join(OUT, `consent.${lang}.png`), fullPage: true });
    await context.close();
    process.stdout.write(`screenshots: docs/screenshots/sign-in.${lang}.png, docs/screenshots/consent.${lang}.png\n`);
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
