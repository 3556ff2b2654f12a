import { randomBytes } from 'node:crypto';

/** A URL-safe random identifier carrying `bytes * 8` bits of entropy. */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}
