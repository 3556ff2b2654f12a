/**
 * `npm test` finds or provides Chromium before the browser tests (scripts/ensure-chromium.ts, its
 * pretest), and says in one line what to do when it cannot. The script runs for real, as npm runs it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

import test from 'ava';

import { findChromium } from './helpers/browser.ts';

function ensureChromium(env: Record<string, string | undefined>) {
  const { CHROMIUM_PATH: _unset, ...inherited } = process.env;
  const result = spawnSync(process.execPath, ['scripts/ensure-chromium.ts'], { env: { ...inherited, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stderr: result.stderr };
}

test('npm test runs the Chromium check first', (t) => {
  const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
  t.is(scripts.pretest, 'node scripts/ensure-chromium.ts && node scripts/ensure-debian-tools.ts');
});

test('a Chromium already on the machine is found, and nothing is installed', (t) => {
  const found = findChromium();
  t.truthy(found, 'this machine has Chromium (the browser tests need it too)');
  const result = ensureChromium({});
  t.is(result.status, 0);
  t.is(result.stderr, '', 'no install was attempted');
  t.is(ensureChromium({ CHROMIUM_PATH: found }).status, 0);
});

test('a CHROMIUM_PATH that is not a browser fails in one line that says what to do, without installing anything', (t) => {
  const result = ensureChromium({ CHROMIUM_PATH: '/nonexistent/chromium' });
  t.is(result.status, 1);
  const lines = result.stderr.trimEnd().split('\n');
  t.is(lines.length, 1, result.stderr);
  t.regex(lines[0]!, /^CHROMIUM_PATH=\/nonexistent\/chromium is not an executable file: point it at a Chromium binary, or unset it/);
});
