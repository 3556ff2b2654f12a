/**
 * `npm run screenshots`: the sign-in and consent pages as people see them, in languages other than
 * English, for the README. Starts Tessera on a free port with a throwaway data directory and one
 * app, drives Chromium (playwright-core) through a registration with `ui_locales`, and writes
 * docs/screenshots/<page>.<lang>.png, for German and Japanese or the languages named on the command
 * line (`npm run screenshots -- fr es`); then the same two pages in French under an operator's brand
 * (branding.json: name, colour, logos), light and dark: <page>.fr.branded.png, <page>.fr.branded-dark.png.
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

/** An SVG logo for the branded screenshots: a green mark and the product's name. */
const ACME_LOGO = `<svg xmlns="http://www.w3.org/2000/svg" width="150" height="32" viewBox="0 0 150 32">
<rect x="0" y="4" width="24" height="24" rx="6" fill="#0a7d4f"/><path d="M7 22 L12 10 L17 22" stroke="#fff" stroke-width="3" fill="none"/>
<text x="32" y="23" font-family="system-ui, sans-serif" font-size="18" font-weight="700" fill="#1b1f24">Acme ID</text></svg>\n`;
const ACME_LOGO_DARK = ACME_LOGO.replace('fill="#1b1f24"', 'fill="#e8eaed"');

interface Stack { server: Awaited<ReturnType<typeof startServer>>; dataDir: string }

async function startStack(branded: boolean): Promise<Stack> {
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
  if (branded) {
    writeFileSync(path.join(configDir, 'acme-logo.svg'), ACME_LOGO);
    writeFileSync(path.join(configDir, 'acme-logo-dark.svg'), ACME_LOGO_DARK);
    writeFileSync(path.join(configDir, 'branding.json'), JSON.stringify({
      product_name: 'Acme ID', primary_color: '#0a7d4f', logo: { light: 'acme-logo.svg', dark: 'acme-logo-dark.svg' },
    }));
  }
  const config = loadConfig({
    NODE_ENV: 'development', PORT: '0', DATA_DIR: dataDir, CONFIG_DIR: configDir, LOG_LEVEL: 'silent',
    ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1',
  });
  return { server: await startServer(config, createLogger('silent')), dataDir };
}

const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });

/** Sign-in, then registration, then consent, in `lang`: docs/screenshots/<page>.<lang><suffix>.png. */
async function shoot({ server }: Stack, lang: string, suffix: string, colorScheme: 'light' | 'dark'): Promise<void> {
  const rp = await oidc.discovery(new URL(server.issuer), 'notes', 'a-screenshot-secret-that-is-long-enough-0123456789', undefined, { execute: [oidc.allowInsecureRequests] });
  const context = await browser.newContext({ locale: lang, viewport: { width: 560, height: 760 }, deviceScaleFactor: 1, colorScheme });
  await context.route(`${CALLBACK}**`, (route) => route.fulfill({ contentType: 'text/plain', body: 'back at the app' }));
  const page = await context.newPage();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: CALLBACK, scope: 'openid profile email offline_access', ui_locales: lang,
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  await page.goto(url.href);
  await page.screenshot({ path: path.join(OUT, `sign-in.${lang}${suffix}.png`), fullPage: true });
  await page.locator('a[href$="/register"]').click();
  await page.waitForURL('**/register');
  await page.locator('#email').fill(`ada.${lang}${suffix}@example.org`);
  await page.locator('#name').fill('Ada Lovelace');
  await page.locator('#password').fill('a long and unusual screenshot passphrase');
  await page.locator('#password_confirmation').fill('a long and unusual screenshot passphrase');
  await page.locator('form[action$="/register"] button[type=submit]').click();
  await page.waitForSelector('button[value=allow]');
  await page.screenshot({ path: path.join(OUT, `consent.${lang}${suffix}.png`), fullPage: true });
  await context.close();
  process.stdout.write(`screenshots: docs/screenshots/sign-in.${lang}${suffix}.png, docs/screenshots/consent.${lang}${suffix}.png\n`);
}

const stacks: Stack[] = [];
try {
  mkdirSync(OUT, { recursive: true });
  const plain = await startStack(false);
  stacks.push(plain);
  for (const lang of LANGUAGES) await shoot(plain, lang, '', 'light');
  // The operator's brand (branding.json) in a language other than English, light and dark.
  const branded = await startStack(true);
  stacks.push(branded);
  await shoot(branded, 'fr', '.branded', 'light');
  await shoot(branded, 'fr', '.branded-dark', 'dark');
} finally {
  await browser.close();
  for (const { server, dataDir } of stacks) {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
