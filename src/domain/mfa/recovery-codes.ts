/**
 * Recovery codes: ten single-use codes shown once, kept only as digests. Each carries 59 random
 * bits (twelve characters from a 31-character alphabet without look-alikes), so a fast hash is enough;
 * the digest also covers the account's subject, so equal codes never look equal across accounts
 * and nothing can be precomputed for all of them at once.
 */
import { createHash, randomInt } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
/** No 0/o, 1/l/i: codes are copied from paper. */
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const GROUPS = 3;
const GROUP_LENGTH = 4;

export function newRecoveryCodes(): string[] {
  const codes = new Set<string>();
  while (codes.size < RECOVERY_CODE_COUNT) {
    const groups = Array.from({ length: GROUPS }, () => Array.from({ length: GROUP_LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join(''));
    codes.add(groups.join('-'));
  }
  return [...codes];
}

/** Case, spaces and dashes do not matter; undefined when the input cannot be a code at all. */
export function normalizeRecoveryCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 40) return undefined;
  const compact = input.toLowerCase().replace(/[\s-]/g, '');
  return new RegExp(`^[${ALPHABET}]{${GROUPS * GROUP_LENGTH}}$`).test(compact) ? compact : undefined;
}

/** `code` as normalizeRecoveryCode returns it. */
export function hashRecoveryCode(sub: string, code: string): string {
  return createHash('sha256').update(`tessera recovery code\0${sub}\0${code}`).digest('base64url');
}
