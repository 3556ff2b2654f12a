import { randomBytes } from 'node:crypto';

/**
 * A URL-safe random identifier carrying at least `bytes * 8` bits of entropy. It never starts with
 * `-` or `_`, so it cannot be mistaken for a command-line option or trip up shell scripts.
 */
export function randomId(bytes = 16): string {
  for (;;) {
    const id = randomBytes(bytes).toString('base64url');
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}
