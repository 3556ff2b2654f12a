/**
 * The crypt(3) formats that `openssl passwd`, `htpasswd`, `mkpasswd` and /etc/shadow write by default:
 * - `$5$` SHA-256-crypt and `$6$` SHA-512-crypt, after Ulrich Drepper's "Unix crypt using SHA-256 and
 *   SHA-512" (https://www.akkadia.org/drepper/SHA-crypt.txt), with an optional `rounds=N$`;
 * - `$1$` md5-crypt, after Poul-Henning Kamp's FreeBSD implementation, and Apache's `$apr1$`, which
 *   differs only in its magic string.
 * Written on node:crypto rather than taken from npm: the packages tried got SHA-256-crypt wrong for a
 * 32-byte password (unixcrypt 3.0.4) or non-ASCII passwords (apache-md5). Passwords are UTF-8 bytes,
 * as passlib and the C tools see them. test/crypt3.test.ts checks every function here byte for byte
 * against openssl and passlib.
 */
import { createHash, hash as digestOf, timingSafeEqual } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** crypt(3)'s base64 alphabet: not RFC 4648's, and written from the low bits up. */
const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export const SHA_CRYPT_DEFAULT_ROUNDS = 5000;
export const SHA_CRYPT_MIN_ROUNDS = 1000;
export const SHA_CRYPT_MAX_ROUNDS = 999_999_999;
const SHA_CRYPT_MAX_SALT = 16;
const MD5_CRYPT_MAX_SALT = 8;
const MD5_CRYPT_ROUNDS = 1000;
/**
 * SHA-crypt runs its rounds from JavaScript (one node:crypto call each, about 4 µs for SHA-512 on
 * the loaded 2-core machine), so a verify hands the event loop back this often: passlib's default
 * 656,000 rounds would otherwise stall every other request for seconds.
 */
const ROUNDS_PER_TURN = 4096;

/**
 * The order in which each algorithm's final digest bytes are grouped, three at a time, before
 * encoding (the specification's interleaving); a group with fewer than three bytes is padded with
 * zeros in front and written with fewer characters.
 */
const SHA256_ORDER: ReadonlyArray<readonly number[]> = [
  [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29], [31, 30],
];
const SHA512_ORDER: ReadonlyArray<readonly number[]> = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10],
  [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41], [63],
];
const MD5_ORDER: ReadonlyArray<readonly number[]> = [[0, 6, 12], [1, 7, 13], [2, 8, 14], [3, 9, 15], [4, 10, 5], [11]];

function encode(digest: Buffer, order: ReadonlyArray<readonly number[]>): string {
  let text = '';
  for (const group of order) {
    let word = 0;
    for (const index of group) word = (word << 8) | digest[index]!;
    // Three bytes make four characters; the trailing one or two bytes make two or three.
    for (let count = group.length + 1; count > 0; count--, word >>>= 6) text += ALPHABET[word & 0x3f];
  }
  return text;
}

/** `length` bytes of `block` repeated, as the specification's "for each block of 32 or 64 bytes, then the rest". */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let offset = 0; offset < length; offset += block.length) block.copy(out, offset, 0, Math.min(block.length, length - offset));
  return out;
}

/**
 * What both algorithms hash in a round, written into one reused buffer: a one-shot hash of it
 * takes half the time of an incremental createHash per round, and rounds are all the cost.
 */
function roundInput(into: Buffer, round: number, digest: Buffer, salt: Buffer, password: Buffer): Buffer {
  let length = (round & 1 ? password : digest).copy(into, 0);
  if (round % 3) length += salt.copy(into, length);
  if (round % 7) length += password.copy(into, length);
  length += (round & 1 ? digest : password).copy(into, length);
  return into.subarray(0, length);
}

/**
 * SHA-256-crypt or SHA-512-crypt of a password. `rounds` undefined is the implicit 5000, written
 * without `rounds=` (as passlib and glibc do); a number is written even when it is 5000 (as openssl
 * does for `-salt 'rounds=5000$...'`), after clamping to the specification's 1000..999,999,999.
 * The salt is cut at 16 characters.
 */
export function sha2Crypt(password: string, salt: string, rounds: number | undefined, bits: 256 | 512): string {
  const steps = sha2CryptSteps(password, salt, rounds, bits);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** sha2Crypt, yielding between batches of rounds so that the caller decides when to go on. */
function* sha2CryptSteps(password: string, salt: string, rounds: number | undefined, bits: 256 | 512): Generator<void, string> {
  const algorithm = bits === 256 ? 'sha256' : 'sha512';
  const h = (...parts: Buffer[]) => {
    const hash = createHash(algorithm);
    for (const part of parts) hash.update(part);
    return hash.digest();
  };
  const p = Buffer.from(password, 'utf8');
  const s = Buffer.from(salt, 'utf8').subarray(0, SHA_CRYPT_MAX_SALT);
  const n = rounds === undefined ? SHA_CRYPT_DEFAULT_ROUNDS : Math.min(SHA_CRYPT_MAX_ROUNDS, Math.max(SHA_CRYPT_MIN_ROUNDS, Math.trunc(rounds)));

  const b = h(p, s, p);
  const a = createHash(algorithm).update(p).update(s).update(repeatTo(b, p.length));
  // One bit of the password's length at a time, lowest first: B for a one, the password for a zero.
  for (let length = p.length; length > 0; length >>= 1) a.update(length & 1 ? b : p);
  let c = a.digest();

  const pBytes = repeatTo(h(...Array<Buffer>(p.length).fill(p)), p.length);
  const sBytes = repeatTo(h(...Array<Buffer>(16 + c[0]!).fill(s)), s.length);

  const input = Buffer.alloc(2 * Math.max(pBytes.length, c.length) + sBytes.length + pBytes.length);
  for (let round = 0; round < n; round++) {
    if (round > 0 && round % ROUNDS_PER_TURN === 0) yield;
    c = digestOf(algorithm, roundInput(input, round, c, sBytes, pBytes), 'buffer');
  }
  const magic = bits === 256 ? '$5$' : '$6$';
  const roundsPart = rounds === undefined ? '' : `rounds=${n}$`;
  return `${magic}${roundsPart}${s.toString('utf8')}$${encode(c, bits === 256 ? SHA256_ORDER : SHA512_ORDER)}`;
}

/** md5-crypt (`$1$`) or Apache's variant (`$apr1$`) of a password; the salt is cut at 8 characters. */
export function md5Crypt(password: string, salt: string, magic: '$1$' | '$apr1$'): string {
  const md5 = () => createHash('md5');
  const p = Buffer.from(password, 'utf8');
  const s = Buffer.from(salt, 'utf8').subarray(0, MD5_CRYPT_MAX_SALT);

  const alternate = md5().update(p).update(s).update(p).digest();
  const context = md5().update(p).update(magic).update(s).update(repeatTo(alternate, p.length));
  // Kamp's quirk, kept by every implementation: a zero byte for a one bit, the password's first byte for a zero bit.
  for (let length = p.length; length > 0; length >>= 1) context.update(length & 1 ? Buffer.of(0) : p.subarray(0, 1));
  let digest = context.digest();

  const input = Buffer.alloc(2 * Math.max(p.length, digest.length) + s.length + p.length);
  for (let round = 0; round < MD5_CRYPT_ROUNDS; round++) digest = digestOf('md5', roundInput(input, round, digest, s, p), 'buffer');
  return `${magic}${s.toString('utf8')}$${encode(digest, MD5_ORDER)}`;
}

/**
 * Each format as these functions write it. Salts are printable ASCII without `$` and `:` (what
 * /etc/shadow and htpasswd lines can hold), at most 16 or 8 characters; `rounds=` has no leading
 * zero (glibc would write the number back without it, and the hash would never match).
 */
export const CRYPT3_PATTERNS: ReadonlyArray<readonly ['sha256-crypt' | 'sha512-crypt' | 'md5-crypt' | 'apr1', RegExp]> = [
  ['sha256-crypt', /^\$5\$(?:rounds=([1-9]\d{0,9})\$)?([!-#%-9;-~]{0,16})\$[./0-9A-Za-z]{43}$/],
  ['sha512-crypt', /^\$6\$(?:rounds=([1-9]\d{0,9})\$)?([!-#%-9;-~]{0,16})\$[./0-9A-Za-z]{86}$/],
  ['md5-crypt', /^\$1\$([!-#%-9;-~]{0,8})\$[./0-9A-Za-z]{22}$/],
  ['apr1', /^\$apr1\$([!-#%-9;-~]{0,8})\$[./0-9A-Za-z]{22}$/],
];

/** The parts of a crypt(3) hash these functions make, or undefined. */
export function parseCrypt3(hash: string): { kind: 'sha256-crypt' | 'sha512-crypt'; rounds: number | undefined; salt: string } | { kind: 'md5-crypt' | 'apr1'; salt: string } | undefined {
  for (const [kind, pattern] of CRYPT3_PATTERNS) {
    const match = pattern.exec(hash);
    if (!match) continue;
    if (kind === 'md5-crypt' || kind === 'apr1') return { kind, salt: match[1]! };
    return { kind, rounds: match[1] === undefined ? undefined : Number(match[1]), salt: match[2]! };
  }
  return undefined;
}

/**
 * Whether the password matches a `$1$`, `$apr1$`, `$5$` or `$6$` hash: the hash is made again from
 * its own salt and rounds and compared in constant time. Anything unparseable is false.
 */
export function verifyCrypt3(hash: string, password: string): boolean {
  const steps = remade(hash, password);
  for (;;) {
    const step = steps.next();
    if (step.done) return sameText(hash, step.value);
  }
}

/** verifyCrypt3 for a server: the event loop serves other requests between batches of SHA-crypt rounds. */
export async function verifyCrypt3Async(hash: string, password: string): Promise<boolean> {
  const steps = remade(hash, password);
  for (;;) {
    const step = steps.next();
    if (step.done) return sameText(hash, step.value);
    await nextTurn();
  }
}

function* remade(hash: string, password: string): Generator<void, string | undefined> {
  const parsed = parseCrypt3(hash);
  if (!parsed) return undefined;
  if (!('rounds' in parsed)) return md5Crypt(password, parsed.salt, parsed.kind === 'apr1' ? '$apr1$' : '$1$');
  return yield* sha2CryptSteps(password, parsed.salt, parsed.rounds, parsed.kind === 'sha256-crypt' ? 256 : 512);
}

function sameText(expected: string, made: string | undefined): boolean {
  if (made === undefined) return false;
  const want = Buffer.from(expected, 'utf8');
  const got = Buffer.from(made, 'utf8');
  return want.length === got.length && timingSafeEqual(want, got);
}
