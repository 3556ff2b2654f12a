/**
 * Password hashes made by other ecosystems' own tools, as an import would bring them: Python's
 * passlib and bcrypt (Debian's python3-passlib and python3-bcrypt, under /usr/bin/python3, not a
 * pyenv one), Apache's htpasswd (apache2-utils) and openssl. .ci/run installs them.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const PYTHON = '/usr/bin/python3';

function run(file: string, args: string[], input: string): string {
  try {
    return execFileSync(file, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    throw new Error(`${file} ${args.join(' ')} failed (install python3-passlib python3-bcrypt apache2-utils, as .ci/run does): ${String(error)}`);
  }
}

/** The password goes through stdin: passlib's handlers by name, with their cheapest honest work factors. */
export function passlibHash(handler: 'scrypt' | 'pbkdf2_sha256' | 'pbkdf2_sha512' | 'pbkdf2_sha1', password: string): string {
  const using = handler === 'scrypt' ? 'rounds=8' : 'rounds=1000';
  return run(PYTHON, ['-c', `import sys; from passlib.hash import ${handler} as h; print(h.using(${using}).hash(sys.stdin.read()))`], password);
}

/** Python's bcrypt module (pyca/bcrypt): `$2b$`. */
export function pythonBcrypt(password: string): string {
  return run(PYTHON, ['-c', 'import sys, bcrypt; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(4)).decode())'], password);
}

/** htpasswd -B: `$2y$`, as Apache and PHP write it. */
export function htpasswdBcrypt(password: string): string {
  // -i reads the password from stdin; -n prints "user:hash" instead of writing a file.
  return run('htpasswd', ['-niB', '-C', '4', 'user'], password).split(':')[1]!;
}

/** A home-made login's digest: `openssl dgst` of the salted password, as hex. */
export function opensslDigest(algorithm: 'sha256' | 'sha1' | 'md5', salted: string): string {
  return run('openssl', ['dgst', `-${algorithm}`, '-r'], salted).split(' ')[0]!;
}

/** `openssl passwd` (its own random salt): `$1$`, `$apr1$`, `$5$`, `$6$`; a `rounds` goes in front of a salt of ours, as openssl reads it. */
export function opensslPasswd(option: '-1' | '-apr1' | '-5' | '-6', password: string, rounds?: number): string {
  const salt = randomBytes(12).toString('base64').replaceAll('+', '.');
  return run('openssl', ['passwd', option, ...(rounds === undefined ? [] : ['-salt', `rounds=${rounds}$${salt}`]), '-stdin'], password);
}

/** `htpasswd -nb user PASSWORD` with no algorithm option, as a reviewer would type it: its default is Apache's `$apr1$`. */
export function htpasswdDefault(password: string): string {
  return run('htpasswd', ['-nb', 'user', password], '').split(':')[1]!;
}
