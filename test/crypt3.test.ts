/**
 * src/domain/crypt3.ts against the real tools, byte for byte: `openssl passwd -1/-apr1/-5/-6` and
 * passlib's md5_crypt, apr_md5_crypt, sha256_crypt and sha512_crypt (glibc's crypt(3) behind it),
 * for a few hundred passwords of every length from 0 to 100, non-ASCII ones among them. The tools
 * are called once per setting with every password, so the test stays within seconds.
 */
import { execFileSync } from 'node:child_process';

import test from 'ava';

import { md5Crypt, sha2Crypt, verifyCrypt3, verifyCrypt3Async } from '../src/domain/crypt3.ts';

const PYTHON = '/usr/bin/python3';
const SALT_CHARACTERS = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Deterministic, so a failure names the same password every run. */
function printable(length: number, seed: number): string {
  let text = '';
  for (let index = 0; index < length; index++) text += String.fromCharCode(0x20 + ((seed * 31 + index * 17 + ((index * index) % 13)) % 95));
  return text;
}

const NON_ASCII = ['é', 'ü', 'ß', '日本語', 'пароль', '🔑', 'Ω≈ç√', 'naïve café'];

/** Every length 0..100 twice over, the block and digest boundaries (16, 20, 32, 64) in non-ASCII too. */
const PASSWORDS: readonly string[] = [
  ...Array.from({ length: 101 }, (_, length) => printable(length, length)),
  ...Array.from({ length: 101 }, (_, length) => (NON_ASCII[length % NON_ASCII.length]! + printable(length, length + 7)).slice(0, length)),
  ...[16, 20, 32, 64].flatMap((length) => NON_ASCII.map((piece) => piece.repeat(length).slice(0, length))),
  ...Array.from({ length: 16 }, (_, index) => 'x'.repeat(index * 7)),
];

/** The passwords the slower settings (5000 and 10,000 SHA-crypt rounds, other salts) are checked with: the boundaries and some non-ASCII. */
const FEW: readonly string[] = [0, 1, 15, 16, 17, 20, 31, 32, 33, 63, 64, 65, 100].map((length) => printable(length, 3)).concat(NON_ASCII.map((piece) => piece.repeat(32).slice(0, 32)));
/** For the slowest, 10,000 rounds: the digest and block boundaries, in ASCII and not. */
const FEWER: readonly string[] = [16, 20, 32, 64].flatMap((length) => [printable(length, 5), NON_ASCII[length % NON_ASCII.length]!.repeat(length).slice(0, length)]);

/** `openssl passwd` reads one password a line from stdin; it answers `<NULL>` for an empty SHA-crypt password, so those stay with passlib. */
function openssl(option: '-1' | '-apr1' | '-5' | '-6', salt: string, passwords: readonly string[]): string[] {
  const output = execFileSync('openssl', ['passwd', option, '-salt', salt, '-stdin'], { input: passwords.join('\n') + '\n', encoding: 'utf8' });
  return output.trimEnd().split('\n');
}

type PasslibRequest = { handler: 'md5_crypt' | 'apr_md5_crypt' | 'sha256_crypt' | 'sha512_crypt'; password: string; salt: string; rounds?: number };

/** One python process for every passlib hash (the interpreter's start-up dominates otherwise). */
function passlib(requests: readonly PasslibRequest[]): string[] {
  const program = [
    'import json, sys',
    'import passlib.hash as ph',
    'out = []',
    'for r in json.load(sys.stdin):',
    '    h = getattr(ph, r["handler"])',
    '    settings = {"salt": r["salt"]}',
    '    if "rounds" in r: settings["rounds"] = r["rounds"]',
    '    out.append(h.using(**settings).hash(r["password"]))',
    'print(json.dumps(out))',
  ].join('\n');
  return JSON.parse(execFileSync(PYTHON, ['-c', program], { input: JSON.stringify(requests), encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })) as string[];
}

function saltFor(index: number, max: number): string {
  return SALT_CHARACTERS.slice(index % 40, (index % 40) + (index % (max + 1)));
}

test('the passwords cover every length from 0 to 100, the block boundaries and non-ASCII', (t) => {
  t.true(PASSWORDS.length >= 200, `${PASSWORDS.length} passwords`);
  for (let length = 0; length <= 100; length++) t.true(PASSWORDS.some((password) => password.length === length), `length ${length}`);
  for (const length of [16, 20, 32, 64]) t.true(PASSWORDS.some((password) => password.length === length && /[^\x00-\x7f]/.test(password)), `non-ASCII of length ${length}`);
  t.false(PASSWORDS.some((password) => password.includes('\n')), 'openssl reads one password a line');
});

test('md5-crypt and apr1 match openssl passwd -1 and -apr1 byte for byte', (t) => {
  for (const [option, magic] of [['-1', '$1$'], ['-apr1', '$apr1$']] as const) {
    for (const [salt, passwords] of [['Xy7./abc', PASSWORDS], ['q', FEW], ['saltsaltTOOLONG', FEW]] as const) {
      const expected = openssl(option, salt, passwords);
      t.is(expected.length, passwords.length);
      const mismatches = passwords.filter((password, index) => md5Crypt(password, salt, magic) !== expected[index]);
      t.deepEqual(mismatches, [], `${option} -salt ${salt}`);
    }
  }
});

test('SHA-256-crypt and SHA-512-crypt match openssl passwd -5 and -6 byte for byte, with and without rounds=', (t) => {
  const nonEmpty = PASSWORDS.filter((password) => password !== '');
  const fewNonEmpty = FEW.filter((password) => password !== '');
  for (const [option, bits] of [['-5', 256], ['-6', 512]] as const) {
    const settings: Array<{ salt: string; rounds: number | undefined; passwords: readonly string[] }> = [
      { salt: 'saltstring', rounds: undefined, passwords: fewNonEmpty },
      { salt: 'rounds=1000$saltstringsaltstringTOOLONG', rounds: 1000, passwords: nonEmpty },
      { salt: 'rounds=5000$ab', rounds: 5000, passwords: fewNonEmpty.slice(0, 3) },
      { salt: 'rounds=10000$Zz/.9', rounds: 10_000, passwords: FEWER },
    ];
    for (const { salt, rounds, passwords } of settings) {
      const expected = openssl(option, salt, passwords);
      t.is(expected.length, passwords.length);
      const bare = salt.replace(/^rounds=\d+\$/, '');
      const mismatches = passwords.filter((password, index) => sha2Crypt(password, bare, rounds, bits) !== expected[index]);
      t.deepEqual(mismatches, [], `${option} -salt ${salt}`);
    }
  }
  t.regex(openssl('-6', 'rounds=5000$ab', ['x'])[0]!, /^\$6\$rounds=5000\$ab\$/, 'openssl writes an explicit rounds=5000');
});

test('all four match passlib byte for byte, with salts of every length and rounds 1000, 5000 (omitted) and 10,000', (t) => {
  const requests: PasslibRequest[] = [];
  const ours: string[] = [];
  PASSWORDS.forEach((password, index) => {
    const md5Salt = saltFor(index, 8);
    requests.push({ handler: 'md5_crypt', password, salt: md5Salt }, { handler: 'apr_md5_crypt', password, salt: md5Salt });
    ours.push(md5Crypt(password, md5Salt, '$1$'), md5Crypt(password, md5Salt, '$apr1$'));
    const shaSalt = saltFor(index, 16);
    requests.push({ handler: 'sha256_crypt', password, salt: shaSalt, rounds: 1000 }, { handler: 'sha512_crypt', password, salt: shaSalt, rounds: 1000 });
    ours.push(sha2Crypt(password, shaSalt, 1000, 256), sha2Crypt(password, shaSalt, 1000, 512));
  });
  FEW.forEach((password, index) => {
    const salt = saltFor(index * 7 + 3, 16);
    for (const [handler, bits] of [['sha256_crypt', 256], ['sha512_crypt', 512]] as const) {
      // passlib leaves out rounds=5000, the implicit default, as glibc does.
      requests.push({ handler, password, salt, rounds: 5000 });
      ours.push(sha2Crypt(password, salt, undefined, bits));
    }
  });
  FEWER.forEach((password, index) => {
    const salt = saltFor(index * 5 + 1, 16);
    for (const [handler, bits] of [['sha256_crypt', 256], ['sha512_crypt', 512]] as const) {
      requests.push({ handler, password, salt, rounds: 10_000 });
      ours.push(sha2Crypt(password, salt, 10_000, bits));
    }
  });
  const expected = passlib(requests);
  t.is(expected.length, requests.length);
  const mismatches = requests.flatMap((request, index) => (ours[index] === expected[index] ? [] : [{ ...request, passlib: expected[index], ours: ours[index] }]));
  t.deepEqual(mismatches, []);
  t.true(expected.some((hash) => /^\$5\$[^r$]/.test(hash)), 'passlib wrote some without rounds=');
});

test('verifyCrypt3 accepts the tools\' hashes with the right password only, and refuses malformed hashes', async (t) => {
  const password = 'the password from the old system';
  const hashes = [
    ...(['-1', '-apr1', '-5', '-6'] as const).map((option) => openssl(option, 'k3y.Salt', [password])[0]!),
    openssl('-6', 'rounds=10000$k3y', [password])[0]!,
    execFileSync('htpasswd', ['-nb', 'user', password], { encoding: 'utf8' }).trim().split(':')[1]!,
  ];
  t.regex(hashes.at(-1)!, /^\$apr1\$/, 'htpasswd\'s default is apr1');
  for (const hash of hashes) {
    t.true(verifyCrypt3(hash, password), hash);
    t.true(await verifyCrypt3Async(hash, password), hash);
    t.false(verifyCrypt3(hash, password + ' '), `${hash}: a wrong password`);
    t.false(await verifyCrypt3Async(hash, 'Z'), `${hash}: a wrong password`);
  }
  const sha = hashes[2]!;
  for (const malformed of ['', '$5$', sha.slice(0, -1), `${sha}x`, sha.replace('$5$', '$7$'), sha.replace('$5$', '$5$rounds=$'), '$1$toolongsalt$abcdefghijklmnopqrstuv', '$apr1$a:b$abcdefghijklmnopqrstuv']) {
    t.false(verifyCrypt3(malformed, password), JSON.stringify(malformed));
  }
});

test('verifyCrypt3Async lets the event loop run between batches of SHA-crypt rounds', async (t) => {
  const hash = sha2Crypt('a password', 'salt', 20_000, 512);
  let turns = 0;
  let counting = true;
  const tick = () => {
    turns++;
    if (counting) setImmediate(tick);
  };
  setImmediate(tick);
  t.true(await verifyCrypt3Async(hash, 'a password'));
  counting = false;
  t.true(turns >= 4, `the event loop ran ${turns} times during 20,000 rounds`);
});
