/**
 * `tessera upstreams create|list|delete` and CONFIG_DIR/upstreams.json, through the real bin/tessera
 * on a fresh installation: the interface operators (and their scripts) drive.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';

import { cliInstallation, singleErrorLine } from './helpers/cli.ts';

const SECRET = 'upstream-client-secret-7f3a9c';

test('upstreams create prints the id and the callback to register, list shows it without its secret, delete removes it', async (t) => {
  const { cli, env, dataDir } = cliInstallation(t);
  const issuer = 'http://127.0.0.1:4555';
  const created = await cli(['upstreams', 'create', '--id', 'acme', '--name', 'Acme ID', '--issuer', issuer, '--client-id', 'tessera-at-acme',
    '--client-secret-stdin', '--scope', 'openid', '--scope', 'email', '--trust-email', '--json'], { input: `${SECRET}\n`, env: { ...env, ISSUER: 'http://localhost:3000' } });
  t.is(created.code, 0, created.stderr);
  t.deepEqual(JSON.parse(created.stdout), { id: 'acme', redirect_uri: 'http://localhost:3000/federation/acme/callback' });

  const listed = await cli(['upstreams', 'list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  t.like((JSON.parse(listed.stdout) as unknown[])[0], { id: 'acme', name: 'Acme ID', kind: 'oidc', issuer, client_id: 'tessera-at-acme', scopes: ['openid', 'email'], trust_email: true, source: 'store' });
  t.false(listed.stdout.includes(SECRET), 'the secret is never printed again');
  const human = await cli(['upstreams', 'list']);
  t.regex(human.stdout, /^ID\s+NAME/);
  t.false(human.stdout.includes(SECRET));
  // Sealed at rest: no file of the installation holds the secret as it was given.
  for (const file of readdirSync(dataDir, { recursive: true, withFileTypes: true })) {
    if (file.isFile()) t.false(readFileSync(path.join(file.parentPath, file.name)).includes(SECRET), `${file.name} holds the secret`);
  }

  const again = await cli(['upstreams', 'create', '--id', 'acme', '--issuer', issuer, '--client-id', 'x', '--client-secret-stdin'], { input: SECRET });
  t.is(again.code, 1);
  t.regex(singleErrorLine(again), /already exists/);

  const deleted = await cli(['upstreams', 'delete', 'acme', '--json']);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(JSON.parse((await cli(['upstreams', 'list', '--json'])).stdout), []);
  const missing = await cli(['upstreams', 'delete', 'acme']);
  t.is(missing.code, 1);
  t.regex(singleErrorLine(missing), /no upstream acme/);
});

test('presets fill in what each provider needs: GitHub is OAuth 2.0 with its API, Microsoft the multi-tenant issuer', async (t) => {
  const { cli, json } = cliInstallation(t);
  for (const preset of ['google', 'microsoft', 'github', 'gitlab']) {
    const created = await cli(['upstreams', 'create', '--id', preset, '--preset', preset, '--client-id', `id-${preset}`, '--client-secret-stdin', '--json'], { input: SECRET });
    t.is(created.code, 0, created.stderr);
    t.regex((JSON.parse(created.stdout) as { redirect_uri: string }).redirect_uri, new RegExp(`/federation/${preset}/callback$`));
  }
  const byId = Object.fromEntries((await json<Array<Record<string, unknown>>>(['upstreams', 'list'])).map((row) => [row.id, row]));
  t.like(byId.google, { name: 'Google', kind: 'oidc', issuer: 'https://accounts.google.com', trust_email: false });
  t.like(byId.microsoft, { name: 'Microsoft', kind: 'oidc', issuer: 'https://login.microsoftonline.com/common/v2.0' });
  t.like(byId.gitlab, { kind: 'oidc', issuer: 'https://gitlab.com' });
  t.like(byId.github, {
    name: 'GitHub',
    kind: 'github',
    authorization_endpoint: 'https://github.com/login/oauth/authorize',
    token_endpoint: 'https://github.com/login/oauth/access_token',
    user_endpoint: 'https://api.github.com/user',
    emails_endpoint: 'https://api.github.com/user/emails',
    scopes: ['read:user', 'user:email'],
  });
  t.false('issuer' in byId.github!);
});

test('a refused upstream writes nothing and says why in one line: http off loopback, http in production, a bad id, no secret flag', async (t) => {
  const { cli, env } = cliInstallation(t);
  const create = (args: string[], extraEnv: Record<string, string> = {}) =>
    cli(['upstreams', 'create', '--client-id', 'x', '--client-secret-stdin', ...args], { input: SECRET, env: { ...env, ...extraEnv } });

  const offLoopback = await create(['--id', 'plain', '--issuer', 'http://id.example.com']);
  t.is(offLoopback.code, 1);
  t.regex(singleErrorLine(offLoopback), /must use https/);

  const production = await create(['--id', 'local', '--issuer', 'http://127.0.0.1:4555'], { NODE_ENV: 'production', ISSUER: 'https://login.example.com', TESSERA_SECRET: 'a'.repeat(43) });
  t.is(production.code, 1);
  t.regex(singleErrorLine(production), /must use https in production/);

  const badId = await create(['--id', 'Not/A Slug', '--issuer', 'https://id.example.com']);
  t.is(badId.code, 1);
  t.regex(singleErrorLine(badId), /the id must be/);

  const unknownPreset = await create(['--id', 'x', '--preset', 'myspace']);
  t.is(unknownPreset.code, 1);
  t.regex(singleErrorLine(unknownPreset), /preset must be one of google, microsoft, github, gitlab/);

  const noStdin = await cli(['upstreams', 'create', '--id', 'x', '--issuer', 'https://id.example.com', '--client-id', 'x']);
  t.is(noStdin.code, 2);
  t.regex(singleErrorLine(noStdin), /--client-secret-stdin/);

  t.deepEqual(JSON.parse((await cli(['upstreams', 'list', '--json'])).stdout), []);
});

test('upstreams.json adds static upstreams, listed with source config; a bad entry stops the CLI with one line per problem', async (t) => {
  const { cli, env } = cliInstallation(t);
  const configDir = env.CONFIG_DIR!;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path.join(configDir, 'upstreams.json'), JSON.stringify([
    { id: 'corp', name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'tessera', client_secret_env: 'CORP_SSO_SECRET', trust_email: true },
  ]));
  const listed = await cli(['upstreams', 'list', '--json'], { env: { ...env, CORP_SSO_SECRET: SECRET } });
  t.is(listed.code, 0, listed.stderr);
  t.like((JSON.parse(listed.stdout) as unknown[])[0], { id: 'corp', name: 'Corp SSO', source: 'config', trust_email: true });
  t.false(listed.stdout.includes(SECRET));
  const removal = await cli(['upstreams', 'delete', 'corp'], { env: { ...env, CORP_SSO_SECRET: SECRET } });
  t.is(removal.code, 1);
  t.regex(singleErrorLine(removal), /defined in .*upstreams\.json/);

  writeFileSync(path.join(configDir, 'upstreams.json'), JSON.stringify([
    { id: 'corp', issuer: 'http://sso.corp.example', client_id: 'tessera', client_secret: SECRET },
    { id: 'Bad Id', issuer: 'https://sso.corp.example', client_id: 'tessera', client_secret: SECRET },
  ]));
  const refused = await cli(['upstreams', 'list']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /upstreams\.json: corp: issuer: http:\/\/sso\.corp\.example must use https/);
  t.regex(refused.stderr, /upstreams\.json: Bad Id: the id must be/);

  writeFileSync(path.join(configDir, 'upstreams.json'), JSON.stringify([{ id: 'other', client_id: 'x' }]));
  const shapeless = await cli(['upstreams', 'list']);
  t.is(shapeless.code, 1);
  t.regex(singleErrorLine(shapeless), /upstreams\.json: 0: give exactly one of client_secret and client_secret_env/);
});
