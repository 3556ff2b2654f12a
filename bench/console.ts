/**
 * `node bench/console.ts`: how long each admin console page takes with CONSOLE_BENCH_ACCOUNTS
 * (default 100,000) accounts in SQLite. The budget is 50 ms per page (median) on the project's
 * 2-core machine. It seeds the accounts through the import (no password hashing), signs an admin
 * in once with Chromium (password, then an authenticator app set up on the spot, as the console
 * demands), then requests each page ROUNDS times over loopback with that browser's cookies and
 * reports the median and the 95th percentile. Loopback adds well under a millisecond, so the times
 * are the server's. A benchmark, not a test: run it alone, on a quiet machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as OTPAuth from 'otpauth';
import { chromium } from 'playwright-core';

import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startServer } from '../src/main.ts';
import { openStore } from '../src/store/open-store.ts';
import { buildServices } from '../src/services.ts';
import { CHROMIUM_ARGS, findChromium } from '../test/helpers/browser.ts';

const ACCOUNTS = Number(process.env.CONSOLE_BENCH_ACCOUNTS ?? 100_000);
const ROUNDS = Number(process.env.CONSOLE_BENCH_ROUNDS ?? 30);
const BUDGET_MS = 50;
const PASSWORD = 'a console benchmark passphrase';
const HASH = '$2b$10$CwTycUXWue0Thq9StjUM0uJ8e5cW8Tg4i6K6Yx5RZtW7qjOnpuz1S';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tessera-console-bench-'));
const env = {
  NODE_ENV: 'test', PORT: '0', DATA_DIR: dataDir, CONFIG_DIR: dataDir, LOG_LEVEL: 'silent',
  ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1', ARGON2_PARALLELISM: '1',
};
const config = loadConfig(env);
let sub = '';
{
  const store = await openStore(config);
  const services = buildServices(config, store);
  const started = performance.now();
  for (let offset = 0; offset < ACCOUNTS; offset += 10_000) {
    const records = Array.from({ length: Math.min(10_000, ACCOUNTS - offset) }, (_, index) => ({
      line: offset + index + 1,
      fields: { email: `person-${offset + index}@example.com`, name: `Person ${offset + index}`, password_hash: HASH } as Record<string, unknown>,
    }));
    const report = await services.userImport.import(records);
    if (report.errors.length) throw new Error(`import refused records: ${JSON.stringify(report.errors[0])}`);
  }
  console.log(`seeded ${ACCOUNTS} accounts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const admin = await services.accounts.register({ email: 'bench-admin@example.org', password: PASSWORD });
  await services.roles.add(admin.email, 'admin');
  sub = admin.sub;
  await services.close();
  await store.close();
}

const server = await startServer(config, createLogger('silent'));
const executablePath = findChromium();
if (!executablePath) throw new Error('Chromium is needed to sign in (CHROMIUM_PATH, /usr/bin/chromium)');
const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/admin`);
  await page.locator('#email').fill('bench-admin@example.org');
  await page.locator('#password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('link', { name: 'Set up an authenticator app' }).click();
  const secret = OTPAuth.Secret.fromBase32((await page.locator('#totp-secret').textContent())!.replace(/\s/g, ''));
  await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret }));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByRole('button', { name: 'I have saved them, continue' }).click();
  await page.waitForURL(`${server.url}/admin`);
  const cookie = (await context.cookies()).map(({ name, value }) => `${name}=${value}`).join('; ');

  const pages = [
    '/admin',
    '/admin/people',
    '/admin/people?q=person-99999',
    '/admin/people?q=person-5',
    // "Contains": reads every account by design (no index serves a part of an email); reported, not budgeted.
    '/admin/people?q=son-99999&match=part',
    `/admin/people/${encodeURIComponent(sub)}`,
    '/admin/apps',
    '/admin/upstreams',
    '/admin/keys',
    '/admin/audit',
  ];
  let over = false;
  for (const target of pages) {
    const times: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const started = performance.now();
      const response = await fetch(`${server.url}${target}`, { headers: { cookie }, redirect: 'manual' });
      await response.arrayBuffer();
      times.push(performance.now() - started);
      if (response.status !== 200) throw new Error(`${target} answered ${response.status}`);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    const p95 = times[Math.floor(times.length * 0.95)]!;
    over ||= median > BUDGET_MS;
    console.log(`${target.padEnd(48)} median ${median.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms${median > BUDGET_MS ? '  OVER BUDGET' : ''}`);
  }
  process.exitCode = over ? 1 : 0;
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
