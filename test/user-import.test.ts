/**
 * `tessera users import` and `export`: hashes made by other ecosystems' real tools (passlib,
 * pyca/bcrypt, htpasswd, `openssl dgst` and `openssl passwd`) sign in through the real sign-in
 * page with the original passwords and become argon2id; bad records are reported by line; a
 * re-run is harmless; a killed import leaves accounts whole or absent; an export imports back as
 * the same accounts. SQLite and the Mongo lane.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';

import test from 'ava';

import { parseImportFile } from '../src/domain/import-formats.ts';
import { cliInstallation, eventually, runCli } from './helpers/cli.ts';
import { htpasswdBcrypt, htpasswdDefault, opensslDigest, opensslPasswd, passlibHash, pythonBcrypt } from './helpers/foreign-hashes.ts';
import { attemptSignIn } from './helpers/login-form.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { staticClient } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const BIN = fileURLToPath(new URL('../bin/tessera', import.meta.url));
const PASSWORD = 'the password from the old system';
const WRONG = 'not the password from anywhere';

function isSignedIn(page: { status: number; headers: Headers }): boolean {
  return page.status === 303 && !(page.headers.get('location') ?? '').includes('error=');
}

function jsonl(records: readonly Record<string, unknown>[]): string {
  return records.map((record) => JSON.stringify(record)).join('\n') + '\n';
}

async function storedHash(server: TestServer, email: string): Promise<string | undefined> {
  return server.withServices(async ({ accounts }) => (await accounts.findByEmail(email))?.passwordHash);
}

async function importThroughCli(server: TestServer, file: string, extra: string[] = []) {
  const result = await runCli(server.cliEnv, ['users', 'import', file, ...extra, '--json']);
  if (result.code !== 0) throw new Error(`users import exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as { imported: number; updated: number; skipped: number; errors: Array<{ line: number; reason: string }>; weak_hashes: Array<{ line: number; algorithm: string }> };
}

test('hashes made by passlib, pyca/bcrypt, htpasswd, openssl dgst and openssl passwd sign in through the sign-in page with the old password and become argon2id', async (t) => {
  // Three sign-ins for each of 14 accounts from one address: startTestServer's RELAXED_RATE_LIMITS keep the per-address limit out of the way.
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const salt = 'pepper-ish';
  const hashes: Record<string, Record<string, unknown>> = {
    'scrypt@example.com': { password_hash: passlibHash('scrypt', PASSWORD) },
    'pbkdf2-sha256@example.com': { password_hash: passlibHash('pbkdf2_sha256', PASSWORD) },
    'pbkdf2-sha512@example.com': { password_hash: passlibHash('pbkdf2_sha512', PASSWORD) },
    'pbkdf2-sha1@example.com': { password_hash: passlibHash('pbkdf2_sha1', PASSWORD) },
    'bcrypt-2b@example.com': { password_hash: pythonBcrypt(PASSWORD) },
    'bcrypt-2y@example.com': { password_hash: htpasswdBcrypt(PASSWORD) },
    'sha256@example.com': { password_hash: `sha256:${opensslDigest('sha256', PASSWORD + salt)}`, password_salt: salt, password_salt_position: 'suffix' },
    'md5@example.com': { password_hash: `md5:${opensslDigest('md5', PASSWORD)}` },
    'sha256-crypt@example.com': { password_hash: opensslPasswd('-5', PASSWORD) },
    'sha512-crypt@example.com': { password_hash: opensslPasswd('-6', PASSWORD) },
    'sha512-crypt-rounds@example.com': { password_hash: opensslPasswd('-6', PASSWORD, 10_000) },
    'md5-crypt@example.com': { password_hash: opensslPasswd('-1', PASSWORD) },
    'apr1@example.com': { password_hash: opensslPasswd('-apr1', PASSWORD) },
    'htpasswd-default@example.com': { password_hash: htpasswdDefault(PASSWORD) },
  };
  t.regex(String(hashes['bcrypt-2y@example.com']!.password_hash), /^\$2y\$/, 'htpasswd -B writes $2y$');
  t.regex(String(hashes['htpasswd-default@example.com']!.password_hash), /^\$apr1\$/, 'plain htpasswd writes $apr1$');
  t.regex(String(hashes['sha512-crypt-rounds@example.com']!.password_hash), /^\$6\$rounds=10000\$/);
  const file = path.join(server.dataDir, 'users.jsonl');
  writeFileSync(file, jsonl(Object.entries(hashes).map(([email, hash]) => ({ email, ...hash }))));

  const refused = await importThroughCli(server, file);
  t.is(refused.imported, 9, 'without --allow-weak-hashes the legacy digests and md5-crypt are refused');
  t.deepEqual(refused.errors.map((error) => error.line), [7, 8, 12, 13, 14]);
  for (const error of refused.errors) t.regex(error.reason, /weak hash.*--allow-weak-hashes/);
  const report = await importThroughCli(server, file, ['--allow-weak-hashes']);
  t.like(report, { imported: 5, skipped: 9, errors: [] });
  t.deepEqual(report.weak_hashes.map((weak) => weak.algorithm), ['sha256', 'md5', 'md5-crypt', 'apr1', 'apr1'], 'and reported as weak');

  for (const [email, { password_hash: original }] of Object.entries(hashes)) {
    t.is((await attemptSignIn(server, email, WRONG)).status, 401, `${email}: a wrong password is refused`);
    t.false((await storedHash(server, email))?.startsWith('$argon2id$'), `${email}: and the imported hash stays`);
    t.true(isSignedIn(await attemptSignIn(server, email, PASSWORD)), `${email}: the old password signs in`);
    const upgraded = await storedHash(server, email);
    t.regex(upgraded ?? '', /^\$argon2id\$/, `${email}: the stored hash became argon2id`);
    t.not(upgraded, original);
    t.true(isSignedIn(await attemptSignIn(server, email, PASSWORD)), `${email}: and the password still signs in`);
  }
  const account = await server.withServices(({ accounts }) => accounts.findByEmail('bcrypt-2b@example.com'));
  t.is(account?.failedSignIns, 0, 'the success reset the failure count in the same write that stored the argon2id hash');
});

test('SHA-crypt rounds beyond 1,000,000 or below 1000, and malformed crypt(3) strings, are refused at import with the reason', async (t) => {
  const { withServices } = cliInstallation(t, 'tessera-import-');
  const checksum512 = 'a'.repeat(86);
  const text = jsonl([
    { email: 'many-rounds@example.com', password_hash: `$6$rounds=1000001$salt$${checksum512}` },
    { email: 'few-rounds@example.com', password_hash: `$5$rounds=999$salt$${'a'.repeat(43)}` },
    { email: 'short@example.com', password_hash: `$6$salt$${checksum512.slice(1)}` },
    { email: 'long-salt@example.com', password_hash: '$1$123456789$aaaaaaaaaaaaaaaaaaaaaa' },
    { email: 'passlib-default@example.com', password_hash: `$6$rounds=656000$salt$${checksum512}` },
  ]);
  const report = await withServices(({ userImport }) => userImport.import(parseImportFile(text, 'jsonl'), { allowWeakHashes: true }));
  t.like(report, { imported: 1, errors: [
    { line: 1, reason: 'SHA-crypt rounds must be between 1000 and 1000000' },
    { line: 2, reason: 'SHA-crypt rounds must be between 1000 and 1000000' },
    { line: 3, reason: 'unknown password hash format' },
    { line: 4, reason: 'unknown password hash format' },
  ] });
});

test('bad records are reported by line with the reason and never stop the good ones; a dry run writes nothing', async (t) => {
  const { withServices } = cliInstallation(t, 'tessera-import-');
  const bcrypt = pythonBcrypt(PASSWORD);
  const text = [
    JSON.stringify({ email: 'good-1@example.com', password_hash: bcrypt, roles: ['staff'], name: 'Good One' }),
    JSON.stringify({ email: 'not an email', password_hash: bcrypt }),
    JSON.stringify({ email: 'unknown-hash@example.com', password_hash: '$md6$abc$def' }),
    JSON.stringify({ email: 'GOOD-1@example.com ', password_hash: bcrypt }),
    JSON.stringify({ email: 'long@example.com', name: 'x'.repeat(101) }),
    '{"email": "broken@example.com"',
    JSON.stringify({ email: 'typo@example.com', pasword_hash: bcrypt }),
    JSON.stringify({ email: 'bad-role@example.com', roles: ['not a role'] }),
    '',
    JSON.stringify({ email: 'good-2@example.com', email_verified: true, created_at: '2019-05-01T10:00:00Z', external_id: 'legacy-42' }),
  ].join('\n');
  const records = parseImportFile(text, 'jsonl');

  const dry = await withServices(({ userImport }) => userImport.import(records, { dryRun: true }));
  t.like(dry, { dry_run: true, imported: 2, updated: 0, skipped: 0 });
  t.is(await withServices(async ({ accounts }) => (await accounts.list()).length), 0, 'the dry run wrote nothing');

  const report = await withServices(({ userImport }) => userImport.import(records));
  t.like(report, { imported: 2, updated: 0, skipped: 0 });
  const reasons = Object.fromEntries(report.errors.map((error) => [error.line, error.reason]));
  t.deepEqual(Object.keys(reasons).map(Number), [2, 3, 4, 5, 6, 7, 8]);
  t.regex(reasons[2]!, /invalid email/);
  t.regex(reasons[3]!, /unknown password hash format/);
  t.regex(reasons[4]!, /duplicate of line 1 \(same email\)/);
  t.regex(reasons[5]!, /name is longer than 100 characters/);
  t.regex(reasons[6]!, /not valid JSON/);
  t.regex(reasons[7]!, /unknown field "pasword_hash"/);
  t.regex(reasons[8]!, /not a valid role name/);

  const [one, two] = await withServices(async ({ accounts }) => [await accounts.findByEmail('good-1@example.com'), await accounts.findByEmail('good-2@example.com')]);
  t.like(one, { passwordHash: bcrypt, roles: ['staff'], name: 'Good One', emailVerified: false });
  t.like(two, { emailVerified: true, externalId: 'legacy-42' });
  t.false(two !== undefined && 'passwordHash' in two, 'no password_hash: an account without a password');
  t.is(two?.createdAt.toISOString(), '2019-05-01T10:00:00.000Z');
  t.deepEqual(report.without_password, ['good-2@example.com']);
});

test('a re-run imports nothing twice, updates what the old system changed, and skips accounts changed here since', async (t) => {
  const { withServices } = cliInstallation(t, 'tessera-import-');
  const bcrypt = pythonBcrypt(PASSWORD);
  const first = jsonl([
    { email: 'same@example.com', password_hash: bcrypt, external_id: 'u1' },
    { email: 'renamed-there@example.com', name: 'Old Name', password_hash: bcrypt, external_id: 'u2' },
    { email: 'edited-here@example.com', name: 'Imported Name', password_hash: bcrypt, external_id: 'u3' },
    { email: 'native@example.com', password_hash: bcrypt },
  ]);
  await withServices(({ accounts }) => accounts.register({ email: 'native@example.com', password: 'a home-grown secret of some length' }));
  t.like(await withServices(({ userImport }) => userImport.import(parseImportFile(first, 'jsonl'))), { imported: 3, skipped: 1 });

  await withServices(async ({ accounts }) => {
    const edited = await accounts.findByEmail('edited-here@example.com');
    await accounts.updateProfile(edited!.sub, { name: 'Chosen By The Person' });
  });
  const second = jsonl([
    { email: 'same@example.com', password_hash: bcrypt, external_id: 'u1' },
    { email: 'moved-there@example.com', name: 'New Name', password_hash: bcrypt, external_id: 'u2' },
    { email: 'edited-here@example.com', name: 'Another Import Name', password_hash: bcrypt, external_id: 'u3' },
    { email: 'native@example.com', password_hash: bcrypt },
  ]);
  const report = await withServices(({ userImport }) => userImport.import(parseImportFile(second, 'jsonl')));
  t.like(report, { imported: 0, updated: 1, skipped: 3, errors: [] });
  t.deepEqual(report.skipped_records.map((skip) => [skip.line, skip.reason.split(':')[0]]), [
    [1, 'already imported, unchanged'],
    [3, 'changed since it was imported (a sign-in, a new password or an edit)'],
    [4, 'an account with this email exists and was not imported'],
  ]);
  const [moved, edited, native] = await withServices(async ({ accounts }) => [
    await accounts.findByEmail('moved-there@example.com'), await accounts.findByEmail('edited-here@example.com'), await accounts.findByEmail('native@example.com'),
  ]);
  t.like(moved, { name: 'New Name', externalId: 'u2' }, 'matched by external_id: the email moved with it');
  t.is(edited?.name, 'Chosen By The Person', 'the person\'s change wins');
  t.regex(native?.passwordHash ?? '', /^\$argon2id\$/, 'an account made here is never overwritten');
});

test('an import killed half-way leaves each account whole or absent, and a re-run finishes the job', async (t) => {
  const { env, dataDir, file } = cliInstallation(t, 'tessera-import-');
  const bcrypt = pythonBcrypt(PASSWORD);
  const total = 20_000;
  const records = Array.from({ length: total }, (_, index) => ({ email: `person-${index}@example.com`, name: `Person ${index}`, roles: ['imported'], password_hash: bcrypt, external_id: `ext-${index}` }));
  const input = file('many.jsonl', jsonl(records));
  // The schema exists before the import starts, so the probe below can read while it runs.
  t.is((await runCli(env, ['users', 'list', '--json'])).code, 0);

  const child = spawn(process.execPath, [BIN, 'users', 'import', input, '--json'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const db = new DatabaseSync(path.join(dataDir, 'tessera.db'), { readOnly: true });
  t.teardown(() => db.close());
  const count = () => (db.prepare('SELECT count(*) AS n FROM accounts').get() as { n: number }).n;
  const started = await eventually(async () => (count() > 0 ? true : undefined), 30_000);
  t.true(started, 'the import began writing');
  child.kill('SIGKILL');
  t.is(await exited, 'SIGKILL');

  const kept = count();
  t.true(kept > 0 && kept < total, `killed half-way: ${kept} of ${total} accounts were written`);
  t.is(kept % 500, 0, 'whole batches only: a transaction is all or nothing');
  const partial = db.prepare(`SELECT count(*) AS n FROM accounts WHERE roles != '["imported"]' OR name IS NULL OR import_digest IS NULL OR password_hash != :hash`).get({ hash: bcrypt }) as { n: number };
  t.is(partial.n, 0, 'every account that is there is whole');

  const rerun = await runCli(env, ['users', 'import', input, '--json']);
  t.is(rerun.code, 0, rerun.stderr);
  const report = JSON.parse(rerun.stdout) as { imported: number; skipped: number; errors: unknown[] };
  t.like(report, { imported: total - kept, skipped: kept, errors: [] });
  t.is(count(), total);
});

test('an export with hashes is owner-only, and imports into a fresh installation as the same accounts', async (t) => {
  const source = cliInstallation(t, 'tessera-export-');
  const target = cliInstallation(t, 'tessera-export-');
  const bcrypt = pythonBcrypt(PASSWORD);
  await source.withServices(async ({ accounts, roles, userImport }) => {
    await accounts.register({ email: 'native@example.com', password: 'a home-grown secret of some length', name: 'Native, "Quoted"' });
    await roles.add('native@example.com', 'admin');
    await userImport.import(parseImportFile(jsonl([
      { email: 'imported@example.com', password_hash: bcrypt, external_id: 'x-1', given_name: 'Ada', created_at: '2020-01-02T03:04:05.000Z', roles: ['a', 'b'] },
      { email: 'salted@example.com', password_hash: `sha1:${opensslDigest('sha1', 'salt' + PASSWORD)}`, password_salt: 'salt' },
      { email: 'nopassword@example.com', email_verified: true },
    ]), 'jsonl'), { allowWeakHashes: true });
  });
  for (const name of ['users.jsonl', 'users.csv']) {
    const exported = path.join(source.dataDir, name);
    const result = await source.cli(['users', 'export', '--with-hashes', exported]);
    t.is(result.code, 0, result.stderr);
    t.is(statSync(exported).mode & 0o777, 0o600, `${name} is readable by its owner only`);
    t.is((await source.cli(['users', 'export', exported])).code, 1, 'an existing file is never overwritten');
  }
  const plain = path.join(source.dataDir, 'plain.jsonl');
  t.is((await source.cli(['users', 'export', plain])).code, 0);
  t.notRegex(readFileSync(plain, 'utf8'), /password_hash|\$2b\$|\$argon2id\$/, 'without --with-hashes no hash is written');

  const imported = await runCli(target.env, ['users', 'import', path.join(source.dataDir, 'users.csv'), '--allow-weak-hashes', '--json']);
  t.is(imported.code, 0, imported.stderr);
  t.like(JSON.parse(imported.stdout), { imported: 4, errors: [] });
  const view = (accounts: Array<{ email: string; passwordHash?: string; roles: string[]; name?: string; givenName?: string; externalId?: string; emailVerified: boolean; createdAt: Date }>) =>
    accounts.map(({ email, passwordHash, roles, name, givenName, externalId, emailVerified, createdAt }) => ({ email, passwordHash, roles, name, givenName, externalId, emailVerified, createdAt })).sort((a, b) => a.email.localeCompare(b.email));
  const before = await source.withServices(async ({ accounts }) => view(await accounts.list()));
  const after = await target.withServices(async ({ accounts }) => view(await accounts.list()));
  t.deepEqual(after, before, 'the same accounts, hashes and all');
  t.true(await target.withServices(async ({ accounts }) => Boolean(await accounts.authenticate('salted@example.com', PASSWORD))), 'the salted legacy digest survived the round trip');
});

test('a Keycloak realm export maps its PBKDF2 credential, realm roles and names, and the password signs in', async (t) => {
  const { withServices } = cliInstallation(t, 'tessera-import-');
  const { pbkdf2Sync, randomBytes } = await import('node:crypto');
  const salt = randomBytes(16);
  const realm = {
    realm: 'old',
    users: [{
      id: '6a8b1c1e-0000-4000-8000-000000000001', username: 'grace', email: 'Grace@Example.com', emailVerified: true, firstName: 'Grace', lastName: 'Hopper',
      createdTimestamp: 1_600_000_000_000, realmRoles: ['default-roles-old', 'engineer'],
      credentials: [{
        type: 'password',
        secretData: JSON.stringify({ value: pbkdf2Sync(PASSWORD, salt, 1000, 64, 'sha512').toString('base64'), salt: salt.toString('base64') }),
        credentialData: JSON.stringify({ hashIterations: 1000, algorithm: 'pbkdf2-sha512' }),
      }],
    }],
  };
  const report = await withServices(({ userImport }) => userImport.import(parseImportFile(JSON.stringify(realm), 'keycloak')));
  t.like(report, { imported: 1, errors: [] });
  const account = await withServices(({ accounts }) => accounts.authenticate('grace@example.com', PASSWORD));
  t.like(account, { email: 'grace@example.com', emailVerified: true, givenName: 'Grace', familyName: 'Hopper', name: 'Grace Hopper', roles: ['engineer'], externalId: realm.users[0]!.id });
  t.is(account.createdAt.getTime(), 1_600_000_000_000);
});

test('Auth0 and Firebase exports map onto the import fields; Firebase\'s keyed scrypt is noted and left out', (t) => {
  const auth0 = parseImportFile([
    JSON.stringify({ _id: { $oid: '5f1a' }, email: 'ada@example.com', email_verified: true, name: 'Ada L', passwordHash: '$2b$10$abcdefghijklmnopqrstuuNhTXo0zgSrcGd1NZ4vY0ZJc9kcA3N6e' }),
    JSON.stringify({ user_id: 'auth0|abc', email: 'bob@example.com', given_name: 'Bob', created_at: '2021-03-04T05:06:07.000Z' }),
  ].join('\n'), 'auth0');
  t.deepEqual(auth0.map((record) => record.fields), [
    { email: 'ada@example.com', email_verified: true, name: 'Ada L', external_id: 'auth0|5f1a', password_hash: '$2b$10$abcdefghijklmnopqrstuuNhTXo0zgSrcGd1NZ4vY0ZJc9kcA3N6e' },
    { email: 'bob@example.com', given_name: 'Bob', created_at: '2021-03-04T05:06:07.000Z', external_id: 'auth0|abc' },
  ]);
  const firebase = parseImportFile(JSON.stringify({ users: [
    { localId: 'fb-1', email: 'cy@example.com', emailVerified: false, displayName: 'Cy', createdAt: '1600000000000', passwordHash: 'c2NyeXB0', salt: 'c2FsdA==' },
  ] }), 'firebase');
  t.deepEqual(firebase, [{ line: 1, fields: { email: 'cy@example.com', email_verified: false, name: 'Cy', external_id: 'fb-1', created_at: '2020-09-13T12:26:40.000Z' }, note: 'Firebase\'s scrypt hash needs the project\'s signer key: imported without a password' }]);
  t.throws(() => parseImportFile('{"nothing": []}', 'keycloak'), { message: /no "users" array/ });
});

test('accounts imported without a password are mailed a link to choose one with --send-set-password-links', async (t) => {
  const { env, dataDir, file, withServices } = cliInstallation(t, 'tessera-import-');
  const input = file('nohash.csv', 'email,name,roles\nfirst@example.com,"Doe, Jane",a;b\nsecond@example.com,,\n');
  const result = await runCli(env, ['users', 'import', input, '--send-set-password-links', '--json']);
  t.is(result.code, 0, result.stderr);
  t.like(JSON.parse(result.stdout), { imported: 2, without_password: ['first@example.com', 'second@example.com'], set_password_links_sent: 2 });
  const outbox = path.join(dataDir, 'outbox');
  const messages = readdirSync(outbox).map((name) => readFileSync(path.join(outbox, name), 'utf8'));
  for (const address of ['first@example.com', 'second@example.com']) {
    t.true(messages.some((message) => message.includes(address) && message.includes('/password/reset')), `${address} got a link`);
  }
  await withServices(async ({ accounts }) => {
    await t.throwsAsync(accounts.authenticate('second@example.com', ''), { code: 'ERR_INVALID_CREDENTIALS' });
    await t.throwsAsync(accounts.authenticate('second@example.com', 'any password at all'), { code: 'ERR_INVALID_CREDENTIALS' }, 'no password is not any password');
  });
});

test('on a terminal a long import shows a progress bar with counts and rate; in a pipe it does not', async (t) => {
  const { env, file } = cliInstallation(t, 'tessera-import-');
  const input = file('progress.jsonl', jsonl(Array.from({ length: 1500 }, (_, index) => ({ email: `p-${index}@example.com` }))));
  // util-linux's script(1) gives the CLI a pseudo-terminal, as an operator's shell would.
  const command = [process.execPath, BIN, 'users', 'import', input].map((part) => `'${part}'`).join(' ');
  const onTerminal = await new Promise<string>((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', () => resolve(output));
  });
  t.regex(onTerminal, /\r\[#{10}\.{20}\] 500\/1500 records, \d+\/s/);
  t.regex(onTerminal, /\[#{30}\] 1500\/1500 records, \d+\/s/);
  t.regex(onTerminal, /Imported 1500/);
  const piped = await runCli(env, ['users', 'import', input]);
  t.notRegex(piped.stderr + piped.stdout, /records, \d+\/s/);
});

test('on MongoDB an imported bcrypt hash signs in through the sign-in page and becomes argon2id, and a re-run skips it', async (t) => {
  const lane = await startMongoLane();
  const server = await startTestServer({ clients: [staticClient()], env: { MONGODB_URI: lane.uri } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
    await lane.stop();
  });
  const text = jsonl([
    { email: 'mongo@example.com', password_hash: htpasswdBcrypt(PASSWORD), roles: ['r'], external_id: 'm-1' },
    { email: 'mongo-2@example.com', password_hash: passlibHash('pbkdf2_sha256', PASSWORD) },
    { email: 'mongo@example.com' },
  ]);
  const report = await server.withServices(({ userImport }) => userImport.import(parseImportFile(text, 'jsonl')));
  t.like(report, { imported: 2, errors: [{ line: 3, reason: 'duplicate of line 1 (same email)' }] });

  t.true(isSignedIn(await attemptSignIn(server, 'mongo@example.com', PASSWORD)));
  t.regex(await storedHash(server, 'mongo@example.com') ?? '', /^\$argon2id\$/);
  const rerun = await server.withServices(({ userImport }) => userImport.import(parseImportFile(text, 'jsonl')));
  t.like(rerun, { imported: 0, updated: 0, skipped: 2 });
  t.deepEqual(rerun.skipped_records.map((skip) => skip.reason.split(':')[0]), ['changed since it was imported (a sign-in, a new password or an edit)', 'already imported, unchanged']);
});
