/**
 * Password hashes brought from other systems: which algorithm a stored hash is, and how to verify a
 * password against it. Accounts keep such a hash only until their first sign-in, which replaces it
 * with argon2id (AccountService.authenticate); nothing here ever makes one of these hashes.
 *
 * Formats, as their usual writers emit them:
 * - PHC strings: `$argon2id$`, `$argon2i$` (verified by argon2), `$scrypt$ln=,r=,p=$salt$hash`
 *   (passlib), `$pbkdf2-sha256$rounds$salt$hash`, `$pbkdf2-sha512$...` and `$pbkdf2$...` for SHA-1
 *   (passlib, whose base64 writes `.` for `+`);
 * - bcrypt's modular crypt `$2a$`, `$2b$`, `$2y$` (htpasswd, every bcrypt library);
 * - crypt(3)'s `$5$` SHA-256-crypt and `$6$` SHA-512-crypt (/etc/shadow, `openssl passwd -5/-6`,
 *   mkpasswd), `$1$` md5-crypt and `$apr1$` (`openssl passwd -1/-apr1`, htpasswd's default),
 *   verified by crypt3.ts;
 * - legacy unsalted or salted digests, `sha256:<hex>`, `sha1:<hex>`, `md5:<hex>`, kept as
 *   `$legacy-sha256$<prefix|suffix>$<base64 salt>$<hex>` so one string holds salt and position.
 */
import { createHash, pbkdf2, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

import bcrypt from 'bcryptjs';

import { CRYPT3_PATTERNS, SHA_CRYPT_MIN_ROUNDS, verifyCrypt3Async } from './crypt3.ts';

const pbkdf2Async = promisify(pbkdf2);
const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, length: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

export type HashFamily = 'argon2id' | 'argon2i' | 'bcrypt' | 'scrypt' | 'pbkdf2-sha256' | 'pbkdf2-sha512' | 'pbkdf2-sha1'
  | 'sha256-crypt' | 'sha512-crypt' | 'md5-crypt' | 'apr1' | 'sha256' | 'sha1' | 'md5';

/**
 * Fast digests, and md5-crypt's fixed 1000 MD5 rounds: a leaked table of them falls to a GPU in
 * hours, so an import takes them only when told to.
 */
export const WEAK_FAMILIES: ReadonlySet<HashFamily> = new Set(['md5-crypt', 'apr1', 'sha256', 'sha1', 'md5']);

const LEGACY_DIGEST_HEX_LENGTH = { sha256: 64, sha1: 40, md5: 32 } as const;
type LegacyAlgorithm = keyof typeof LEGACY_DIGEST_HEX_LENGTH;

/** Bounds on work factors: far above any real deployment's, low enough that a hostile file cannot make one sign-in take minutes. */
const MAX_PBKDF2_ROUNDS = 10_000_000;
/**
 * SHA-crypt's rounds are one node:crypto call each from JavaScript (crypt3.ts): a million SHA-512
 * rounds took about 4 s on the loaded 2-core machine. Above passlib's defaults (535,000 and 656,000).
 */
const MAX_SHA_CRYPT_ROUNDS = 1_000_000;
const MAX_SCRYPT_LOG_N = 20;
const MAX_SCRYPT_RP = 64;

const B64 = '[A-Za-z0-9+/.]+';
const PATTERNS: ReadonlyArray<readonly [HashFamily, RegExp]> = [
  // Parameters in any order: node's argon2 writes m,p,t; the reference implementation and passlib m,t,p.
  ['argon2id', /^\$argon2id\$v=\d+\$[mtp]=\d+,[mtp]=\d+,[mtp]=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/],
  ['argon2i', /^\$argon2i\$v=\d+\$[mtp]=\d+,[mtp]=\d+,[mtp]=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/],
  ['bcrypt', /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/],
  ['scrypt', new RegExp(`^\\$scrypt\\$ln=\\d+,r=\\d+,p=\\d+\\$${B64}\\$${B64}$`)],
  ['pbkdf2-sha256', new RegExp(`^\\$pbkdf2-sha256\\$\\d+\\$${B64}\\$${B64}$`)],
  ['pbkdf2-sha512', new RegExp(`^\\$pbkdf2-sha512\\$\\d+\\$${B64}\\$${B64}$`)],
  ['pbkdf2-sha1', new RegExp(`^\\$pbkdf2\\$\\d+\\$${B64}\\$${B64}$`)],
  ...CRYPT3_PATTERNS,
  ['sha256', /^\$legacy-sha256\$(prefix|suffix)\$[A-Za-z0-9+/=]*\$[0-9a-f]{64}$/],
  ['sha1', /^\$legacy-sha1\$(prefix|suffix)\$[A-Za-z0-9+/=]*\$[0-9a-f]{40}$/],
  ['md5', /^\$legacy-md5\$(prefix|suffix)\$[A-Za-z0-9+/=]*\$[0-9a-f]{32}$/],
];

/** The algorithm of a stored hash, or undefined for anything else (including the empty "no password"). */
export function hashFamily(hash: string): HashFamily | undefined {
  for (const [family, pattern] of PATTERNS) if (pattern.test(hash)) return family;
  return undefined;
}

export type SaltPosition = 'prefix' | 'suffix';

/**
 * Turns what an import file gives into the string Tessera stores: PHC and bcrypt strings as they
 * are, `sha256:<hex>` (with its salt) into the `$legacy-...$` form. A string problem says why not.
 */
export function storedHashOf(input: { hash: string; salt?: string; saltPosition?: SaltPosition }): { hash: string; family: HashFamily } | string {
  const legacy = /^(sha256|sha1|md5):([0-9a-fA-F]+)$/.exec(input.hash);
  if (legacy) {
    const algorithm = legacy[1] as LegacyAlgorithm;
    const hex = legacy[2]!.toLowerCase();
    if (hex.length !== LEGACY_DIGEST_HEX_LENGTH[algorithm]) return `a ${algorithm} digest has ${LEGACY_DIGEST_HEX_LENGTH[algorithm]} hex digits`;
    const salt = Buffer.from(input.salt ?? '', 'utf8').toString('base64');
    return { hash: `$legacy-${algorithm}$${input.saltPosition ?? 'prefix'}$${salt}$${hex}`, family: algorithm };
  }
  if (input.salt !== undefined || input.saltPosition !== undefined) return 'password_salt goes only with a sha256:, sha1: or md5: digest';
  const family = hashFamily(input.hash);
  if (!family) return 'unknown password hash format';
  const bound = workFactorProblem(input.hash, family);
  return bound ?? { hash: input.hash, family };
}

/** The reverse of storedHashOf for an export: a legacy digest goes back to `sha256:<hex>` and its salt. */
export function exportedHashOf(hash: string): { password_hash: string; password_salt?: string; password_salt_position?: SaltPosition } {
  const legacy = /^\$legacy-(sha256|sha1|md5)\$(prefix|suffix)\$([A-Za-z0-9+/=]*)\$([0-9a-f]+)$/.exec(hash);
  if (!legacy) return { password_hash: hash };
  const salt = Buffer.from(legacy[3]!, 'base64').toString('utf8');
  return { password_hash: `${legacy[1]}:${legacy[4]}`, ...(salt && { password_salt: salt, password_salt_position: legacy[2] as SaltPosition }) };
}

function workFactorProblem(hash: string, family: HashFamily): string | undefined {
  if (family.startsWith('pbkdf2')) {
    const rounds = Number(hash.split('$')[2]);
    if (!(rounds >= 1 && rounds <= MAX_PBKDF2_ROUNDS)) return `PBKDF2 rounds must be between 1 and ${MAX_PBKDF2_ROUNDS}`;
  }
  if (family === 'sha256-crypt' || family === 'sha512-crypt') {
    // Without rounds= the hash has the default 5000; glibc never writes fewer than 1000.
    const rounds = Number(/\$rounds=(\d+)\$/.exec(hash)?.[1] ?? 5000);
    if (!(rounds >= SHA_CRYPT_MIN_ROUNDS && rounds <= MAX_SHA_CRYPT_ROUNDS)) return `SHA-crypt rounds must be between ${SHA_CRYPT_MIN_ROUNDS} and ${MAX_SHA_CRYPT_ROUNDS}`;
  }
  if (family === 'scrypt') {
    const { ln, r, p } = scryptParameters(hash);
    if (!(ln >= 1 && ln <= MAX_SCRYPT_LOG_N && r >= 1 && r <= MAX_SCRYPT_RP && p >= 1 && p <= MAX_SCRYPT_RP)) return 'scrypt parameters out of range';
  }
  return undefined;
}

function scryptParameters(hash: string): { ln: number; r: number; p: number } {
  const parameters = Object.fromEntries((hash.split('$')[2] ?? '').split(',').map((pair) => pair.split('=')));
  return { ln: Number(parameters.ln), r: Number(parameters.r), p: Number(parameters.p) };
}

/** passlib's "adapted base64" writes `.` for `+` and drops the padding; Buffer reads it once `.` is back. */
function fromAb64(text: string): Buffer {
  return Buffer.from(text.replaceAll('.', '+'), 'base64');
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Verifies a password against a hash of one of the imported families other than argon2 (the
 * caller's argon2 verify handles those). Never throws: a malformed hash fails the verification.
 */
export async function verifyImportedHash(hash: string, password: string): Promise<boolean> {
  try {
    const family = hashFamily(hash);
    switch (family) {
      case 'bcrypt':
        // $2y$ (PHP, htpasswd) is the same algorithm as $2b$; bcryptjs reads both spellings as one.
        return await bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
      case 'scrypt': {
        const [, , , salt = '', expected = ''] = hash.split('$');
        const { ln, r, p } = scryptParameters(hash);
        const want = fromAb64(expected);
        // passlib hashes the salt's bytes as decoded from its base64.
        const got = await scryptAsync(password, fromAb64(salt), want.length, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 });
        return equal(got, want);
      }
      case 'pbkdf2-sha256':
      case 'pbkdf2-sha512':
      case 'pbkdf2-sha1': {
        const [, , rounds = '0', salt = '', expected = ''] = hash.split('$');
        const want = fromAb64(expected);
        const digest = family === 'pbkdf2-sha1' ? 'sha1' : family.slice('pbkdf2-'.length);
        return equal(await pbkdf2Async(password, fromAb64(salt), Number(rounds), want.length, digest), want);
      }
      case 'sha256-crypt':
      case 'sha512-crypt':
      case 'md5-crypt':
      case 'apr1':
        return await verifyCrypt3Async(hash, password);
      case 'sha256':
      case 'sha1':
      case 'md5': {
        const [, , position, salt64 = '', hex = ''] = hash.split('$');
        const salt = Buffer.from(salt64, 'base64').toString('utf8');
        const salted = position === 'suffix' ? password + salt : salt + password;
        return equal(createHash(family).update(salted, 'utf8').digest(), Buffer.from(hex, 'hex'));
      }
      default:
        return false;
    }
  } catch {
    return false;
  }
}
