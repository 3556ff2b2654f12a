/**
 * `npm test`'s pretest, after Chromium: the import tests verify hashes made by other ecosystems' own
 * tools (Python's passlib and bcrypt, Apache's htpasswd) and one test signs in through authlib, a
 * Python relying party. They run Debian's python (/usr/bin/python3) and these packages; install them
 * where that is allowed, or say in one line what to do.
 */
import { spawnSync } from 'node:child_process';

import { aptGetAsRoot } from './apt.ts';

const PACKAGES = ['python3-passlib', 'python3-bcrypt', 'python3-authlib', 'python3-requests', 'apache2-utils'];

function present(): boolean {
  const python = spawnSync('/usr/bin/python3', ['-c', 'import passlib, bcrypt, authlib, requests'], { stdio: 'ignore' }).status === 0;
  const htpasswd = spawnSync('htpasswd', ['-nbB', 'u', 'p'], { stdio: 'ignore' }).status === 0;
  return python && htpasswd;
}

if (!present()) {
  const aptGet = aptGetAsRoot();
  if (aptGet) {
    process.stderr.write(`test tools: installing ${PACKAGES.join(' ')} for the import and relying-party tests\n`);
    try {
      aptGet(['update']);
      aptGet(['install', '-y', '--no-install-recommends', ...PACKAGES]);
    } catch {
      // Said below, in one line.
    }
  }
  if (!present()) {
    process.stderr.write(`npm test needs ${PACKAGES.join(' ')} (Debian or Ubuntu) and could not install them: run \`sudo apt-get install -y ${PACKAGES.join(' ')}\`.\n`);
    process.exit(1);
  }
}
