/**
 * `npm test`'s pretest: the browser tests need Chromium, so find one or provide one before they run.
 * In order: CHROMIUM_PATH (when set, it must work: an operator's explicit choice is never replaced),
 * the system's Chromium, then an install where one is allowed: Debian's `chromium` package with
 * apt-get when root or passwordless sudo (not on Ubuntu, whose package is only a snap stub), else the
 * Chromium that playwright-core downloads into ~/.cache/ms-playwright. When all of that fails it
 * says in one line what to do, and fails.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';

import { findChromium } from '../test/helpers/browser.ts';
import { aptGetAsRoot, osId } from './apt.ts';

const WHAT_TO_DO = 'npm test needs Chromium and could not find or install it: run `sudo apt-get install -y chromium` (Debian) or `npx playwright-core install --with-deps chromium` (Ubuntu and others), or set CHROMIUM_PATH to a Chromium binary.';

function fail(line: string): never {
  process.stderr.write(`${line}\n`);
  process.exit(1);
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function installFromDebian(): boolean {
  if (osId() === 'ubuntu') return false;
  const aptGet = aptGetAsRoot();
  if (!aptGet) return false;
  process.stderr.write('chromium: not found; installing Debian\'s chromium package for the browser tests\n');
  try {
    aptGet(['update']);
    aptGet(['install', '-y', '--no-install-recommends', 'chromium']);
    return true;
  } catch {
    return false;
  }
}

function installFromPlaywright(): boolean {
  process.stderr.write('chromium: not found; downloading playwright-core\'s Chromium for the browser tests\n');
  const cli = createRequire(import.meta.url).resolve('playwright-core/cli.js');
  // --with-deps installs the libraries Chromium needs, which takes root; without it the download still works where they are present.
  const withDeps = process.getuid?.() === 0 ? ['--with-deps'] : [];
  return spawnSync(process.execPath, [cli, 'install', ...withDeps, 'chromium'], { stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
}

const explicit = process.env.CHROMIUM_PATH;
if (explicit) {
  if (!executable(explicit)) fail(`CHROMIUM_PATH=${explicit} is not an executable file: point it at a Chromium binary, or unset it so that npm test finds or installs one.`);
  process.exit(0);
}
if (findChromium()) process.exit(0);
if ((installFromDebian() && findChromium()) || (installFromPlaywright() && findChromium())) process.exit(0);
fail(WHAT_TO_DO);
