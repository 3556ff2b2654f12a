/**
 * The `tessera` command line against a temporary DATA_DIR and CONFIG_DIR and the embedded store.
 * Commands run in this process through the CLI's entry point (runCommand: the same parsing,
 * configuration, store, output and exit code as bin/tessera); what only a process shows (the bin
 * script, exit statuses, stdin as a pipe, `serve` and its signals) runs the real bin/tessera in a
 * child process. Effects are checked through a second CLI invocation, through the store via the
 * domain services, or through a running server.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test from 'ava';

import { cliInstallation, eventually, runCli, singleErrorLine } from './helpers/cli.ts';
import { removeDir, startTestServer } from './helpers/server.ts';

const BIN = fileURLToPath(new URL('../bin/tessera', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const PASSWORD = 'correct horse battery staple';

test('tessera --help and tessera help print the usage on stdout and exit 0', async (t) => {
  const { cli } = cliInstallation(t);
  for (const args of [['--help'], ['help'], ['-h']]) {
    const result = await cli(args);
    t.is(result.code, 0, args.join(' '));
    t.is(result.stderr, '');
    for (const command of ['serve', 'clients create', 'clients list', 'clients delete', 'users create', 'users list', 'users disable', 'keys list', 'keys rotate']) {
      t.true(result.stdout.includes(command), `usage mentions ${command}`);
    }
  }
  const commandHelp = await cli(['clients', 'create', '--help']);
  t.is(commandHelp.code, 0);
  t.regex(commandHelp.stdout, /^Usage: tessera clients create --name NAME --redirect-uri URI/);
  t.regex(commandHelp.stdout, /--post-logout-redirect-uri URI/);
  t.regex((await cli(['help', 'users', 'create'])).stdout, /--password-stdin/);
});

test('bin/tessera exits with each command\'s status and reads a password piped to its stdin', async (t) => {
  const { spawnCli, cli, env } = cliInstallation(t);
  const help = await spawnCli(['--help']);
  t.is(help.code, 0);
  t.is(help.stderr, '');
  t.regex(help.stdout, /^Usage: tessera <command>/);

  const usage = await spawnCli(['frobnicate']);
  t.is(usage.code, 2);
  t.regex(singleErrorLine(usage), /^tessera: unknown command "frobnicate"/);

  const misconfigured = await spawnCli(['users', 'list'], { env: { ...env, PORT: 'abc' } });
  t.is(misconfigured.code, 1);
  t.regex(singleErrorLine(misconfigured), /^Configuration error: PORT/);

  const created = await spawnCli(['users', 'create', '--email', 'ada@example.com', '--password-stdin', '--json'], { input: `${PASSWORD}\n` });
  t.is(created.code, 0, created.stderr);
  const { sub } = JSON.parse(created.stdout) as { sub: string };
  const refused = await spawnCli(['users', 'create', '--email', 'ada@example.com', '--password-stdin'], { input: PASSWORD });
  t.is(refused.code, 1);
  t.is(singleErrorLine(refused), 'tessera: a user with the email ada@example.com already exists');
  t.like(JSON.parse((await cli(['users', 'list', '--json'])).stdout), [{ sub, email: 'ada@example.com' }]);
});

test('bin/tessera on a Node.js older than 24 says so in one line and exits 1', async (t) => {
  const { spawnCli, env, file } = cliInstallation(t);
  // The bin script's check runs before any TypeScript: a preload makes this Node report an older version.
  const older = file('older-node.mjs', 'Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.20.2" } });\nObject.defineProperty(process, "version", { value: "v20.20.2" });\n');
  const result = await spawnCli(['--help'], { env: { ...env, NODE_OPTIONS: `--import=${pathToFileURL(older).href}` } });
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.is(singleErrorLine(result), 'Tessera needs Node.js 24 or newer; this is Node.js v20.20.2.');
});

test('bad usage exits 2 with one line that names the problem', async (t) => {
  const { cli } = cliInstallation(t);
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /^tessera: unknown command "frobnicate"/],
    [['clients', 'frobnicate'], /^tessera: unknown command "clients frobnicate"/],
    [['clients', 'list', '--bogus'], /^tessera: unknown option --bogus/],
    [['clients', 'create', '--name', 'App'], /^tessera: "clients create" needs --redirect-uri URI/],
    [['clients', 'delete'], /^tessera: "clients delete" needs CLIENT_ID/],
    [['users', 'disable', 'a@example.com', 'b@example.com'], /^tessera: unexpected argument "b@example.com"/],
  ];
  for (const [args, expected] of cases) {
    const result = await cli(args);
    t.is(result.code, 2, args.join(' '));
    t.regex(singleErrorLine(result), expected);
    t.is(result.stdout, '');
  }
});

test('clients create --json prints the client id and a 256-bit secret that later commands never show', async (t) => {
  const { cli, withServices } = cliInstallation(t);
  const created = await cli([
    'clients', 'create', '--name', 'Shop', '--redirect-uri', 'https://shop.example/cb', '--redirect-uri', 'http://localhost:8080/cb',
    '--post-logout-redirect-uri', 'https://shop.example/bye', '--json',
  ]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stderr, '');
  const output = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
  t.deepEqual(Object.keys(output).sort(), ['client_id', 'client_secret']);
  t.regex(output.client_secret, /^[A-Za-z0-9_-]{43}$/, '32 random bytes in base64url');

  // A second invocation sees the client (it was written to the store), without its secret.
  const listed = await cli(['clients', 'list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  const clients = JSON.parse(listed.stdout) as Array<{ client_id: string; client_name: string; source: string; metadata: Record<string, unknown> }>;
  t.is(clients.length, 1);
  t.like(clients[0], { client_id: output.client_id, client_name: 'Shop', source: 'store' });
  t.deepEqual(clients[0]?.metadata.redirect_uris, ['https://shop.example/cb', 'http://localhost:8080/cb']);
  t.deepEqual(clients[0]?.metadata.post_logout_redirect_uris, ['https://shop.example/bye']);
  t.false(listed.stdout.includes(output.client_secret));
  t.false(listed.stdout.includes('sha256$'), 'not even the digest');

  const human = await cli(['clients', 'list']);
  t.is(human.code, 0);
  t.regex(human.stdout, /^CLIENT_ID\s+SOURCE/);
  t.true(human.stdout.includes(output.client_id));
  t.false(human.stdout.includes(output.client_secret));

  // The secret printed is the one the store accepts.
  const metadata = await withServices((services) => services.clients.findMetadata(output.client_id));
  t.is(metadata?.token_endpoint_auth_method, 'client_secret_basic');
  const { clientSecretMatches } = await import('../src/domain/clients.ts');
  t.true(clientSecretMatches(String(metadata?.client_secret), output.client_secret));
});

test('clients create without --json prints the id and the secret for a person to copy', async (t) => {
  const { cli } = cliInstallation(t);
  const created = await cli(['clients', 'create', '--name', 'Shop', '--redirect-uri', 'https://shop.example/cb']);
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout, /^client_id: +\S{22}$/m);
  t.regex(created.stdout, /^client_secret: +[A-Za-z0-9_-]{43}$/m);
});

test('a public client is created without a secret and authenticates with none', async (t) => {
  const { cli } = cliInstallation(t);
  const created = await cli(['clients', 'create', '--name', 'SPA', '--redirect-uri', 'http://localhost:5173/cb', '--public', '--json']);
  t.is(created.code, 0, created.stderr);
  const output = JSON.parse(created.stdout) as Record<string, unknown>;
  t.deepEqual(Object.keys(output), ['client_id']);
  const clients = JSON.parse((await cli(['clients', 'list', '--json'])).stdout) as Array<{ metadata: Record<string, unknown> }>;
  t.is(clients[0]?.metadata.token_endpoint_auth_method, 'none');
  t.false('client_secret' in (clients[0]?.metadata ?? {}));
});

test('an invalid redirect URI exits 1 with one line and writes nothing', async (t) => {
  const { cli } = cliInstallation(t);
  const result = await cli(['clients', 'create', '--name', 'Evil', '--redirect-uri', 'https://ok.example/cb', '--redirect-uri', 'http://evil.example/cb', '--json']);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(singleErrorLine(result), /^tessera: http:\/\/evil\.example\/cb must use https/);
  const listed = await cli(['clients', 'list', '--json']);
  t.deepEqual(JSON.parse(listed.stdout), []);
});

test('clients delete removes a stored client, and an unknown id exits 1 with one line', async (t) => {
  const { cli } = cliInstallation(t);
  const { client_id: clientId } = JSON.parse((await cli(['clients', 'create', '--name', 'Old', '--redirect-uri', 'https://old.example/cb', '--json'])).stdout) as { client_id: string };
  const deleted = await cli(['clients', 'delete', clientId]);
  t.is(deleted.code, 0, deleted.stderr);
  t.true(deleted.stdout.includes(clientId));
  t.deepEqual(JSON.parse((await cli(['clients', 'list', '--json'])).stdout), []);

  const again = await cli(['clients', 'delete', clientId]);
  t.is(again.code, 1);
  t.is(singleErrorLine(again), `tessera: no client with id ${clientId}`);
  // Generated ids are base64url and may start with "-"; such an id is still an argument, not an option.
  const dashed = await cli(['clients', 'delete', '-Xq3_unknown-id']);
  t.is(dashed.code, 1);
  t.is(singleErrorLine(dashed), 'tessera: no client with id -Xq3_unknown-id');
});

test('users create reads the password from stdin, strips one trailing newline and prints the sub', async (t) => {
  const { cli, withServices } = cliInstallation(t);
  const created = await cli(['users', 'create', '--email', 'Ada@Example.com', '--password-stdin', '--name', 'Ada Lovelace', '--json'], { input: `${PASSWORD}\n` });
  t.is(created.code, 0, created.stderr);
  t.is(created.stderr, '');
  const output = JSON.parse(created.stdout) as { sub: string };
  t.deepEqual(Object.keys(output), ['sub']);
  t.regex(output.sub, /^[A-Za-z0-9_-]{22}$/);

  const second = await cli(['users', 'create', '--email', 'bob@example.com', '--password-stdin'], { input: `${PASSWORD}\n\n` });
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /Created user bob@example\.com/);

  await withServices(async ({ accounts }) => {
    const ada = await accounts.authenticate('ada@example.com', PASSWORD);
    t.is(ada.sub, output.sub);
    t.is(ada.name, 'Ada Lovelace');
    // Only one newline is removed: the second belongs to the password.
    await t.throwsAsync(accounts.authenticate('bob@example.com', PASSWORD), { code: 'ERR_INVALID_CREDENTIALS' });
    t.truthy(await accounts.authenticate('bob@example.com', `${PASSWORD}\n`));
  });
});

test('users create refuses a taken email, a short password and a password given any way but stdin', async (t) => {
  const { cli } = cliInstallation(t);
  t.is((await cli(['users', 'create', '--email', 'ada@example.com', '--password-stdin'], { input: PASSWORD })).code, 0);

  const taken = await cli(['users', 'create', '--email', ' ADA@example.com', '--password-stdin', '--json'], { input: PASSWORD });
  t.is(taken.code, 1);
  t.is(taken.stdout, '');
  t.is(singleErrorLine(taken), 'tessera: a user with the email ada@example.com already exists');

  const short = await cli(['users', 'create', '--email', 'bob@example.com', '--password-stdin'], { input: 'short\n' });
  t.is(short.code, 1);
  t.regex(singleErrorLine(short), /^tessera: Use at least 12 characters/);

  const invalid = await cli(['users', 'create', '--email', 'not-an-email', '--password-stdin'], { input: PASSWORD });
  t.is(invalid.code, 1);
  t.regex(singleErrorLine(invalid), /^tessera: Enter a valid email address/);

  const noStdin = await cli(['users', 'create', '--email', 'bob@example.com']);
  t.is(noStdin.code, 2);
  t.regex(singleErrorLine(noStdin), /needs --password-stdin/);
  const asArgument = await cli(['users', 'create', '--email', 'bob@example.com', '--password', PASSWORD]);
  t.is(asArgument.code, 2);
  t.regex(singleErrorLine(asArgument), /unknown option --password/);

  const users = JSON.parse((await cli(['users', 'list', '--json'])).stdout) as unknown[];
  t.is(users.length, 1, 'nothing was written by the refused attempts');
});

test('users list shows accounts without password hashes', async (t) => {
  const { cli } = cliInstallation(t);
  t.deepEqual(JSON.parse((await cli(['users', 'list', '--json'])).stdout), []);
  const { sub } = JSON.parse((await cli(['users', 'create', '--email', 'ada@example.com', '--password-stdin', '--name', 'Ada', '--json'], { input: PASSWORD })).stdout) as { sub: string };
  const listed = await cli(['users', 'list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  const users = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
  t.is(users.length, 1);
  t.like(users[0], { sub, email: 'ada@example.com', email_verified: false, name: 'Ada', disabled: false });
  t.false(/hash|argon2/i.test(listed.stdout));
  t.deepEqual(Object.keys(users[0] ?? {}).sort(), ['created_at', 'disabled', 'email', 'email_verified', 'identities', 'name', 'roles', 'sub', 'updated_at']);

  const human = await cli(['users', 'list']);
  t.regex(human.stdout, /^EMAIL\s+SUB\s+STATUS/);
  t.regex(human.stdout, /ada@example\.com\s+\S+\s+active/);
  t.false(/argon2/.test(human.stdout));
});

test('users disable stops sign-in, users enable restores it, and an unknown email exits 1', async (t) => {
  const { cli, withServices } = cliInstallation(t);
  await cli(['users', 'create', '--email', 'ada@example.com', '--password-stdin'], { input: PASSWORD });

  const disabled = await cli(['users', 'disable', 'ADA@example.com']);
  t.is(disabled.code, 0, disabled.stderr);
  t.regex(disabled.stdout, /Disabled ada@example\.com/);
  const users = JSON.parse((await cli(['users', 'list', '--json'])).stdout) as Array<{ disabled: boolean }>;
  t.true(users[0]?.disabled);
  await withServices(({ accounts }) => t.throwsAsync(accounts.authenticate('ada@example.com', PASSWORD), { code: 'ERR_INVALID_CREDENTIALS' }));

  t.is((await cli(['users', 'enable', 'ada@example.com'])).code, 0);
  await withServices(async ({ accounts }) => t.truthy(await accounts.authenticate('ada@example.com', PASSWORD)));

  const unknown = await cli(['users', 'disable', 'nobody@example.com']);
  t.is(unknown.code, 1);
  t.is(singleErrorLine(unknown), 'tessera: no user with the email nobody@example.com');
});

test('keys rotate generates the first keys, then replaces the current ones and keeps the old ones listed as retired', async (t) => {
  const { cli } = cliInstallation(t);
  t.deepEqual(JSON.parse((await cli(['keys', 'list', '--json'])).stdout), []);

  const first = await cli(['keys', 'rotate', '--json']);
  t.is(first.code, 0, first.stderr);
  const generated = JSON.parse(first.stdout) as { current: string[]; retired: string[] };
  t.is(generated.current.length, 3, 'one signing key per family');
  t.deepEqual(generated.retired, []);

  type KeyRow = { kid: string; alg: string; use: string; status: string; expires_at?: string };
  const afterFirst = JSON.parse((await cli(['keys', 'list', '--json'])).stdout) as KeyRow[];
  t.deepEqual(afterFirst.filter((key) => key.use === 'sig').map((key) => key.alg).sort(), ['ES256', 'EdDSA', 'RS256']);
  t.is(afterFirst.filter((key) => key.use === 'cookie').length, 1, 'a cookie key too, as on first server start');

  const second = await cli(['keys', 'rotate', '--json']);
  t.is(second.code, 0, second.stderr);
  const rotated = JSON.parse(second.stdout) as { current: string[]; retired: string[] };
  t.deepEqual([...rotated.retired].sort(), [...generated.current].sort());
  t.is(rotated.current.length, 3);
  t.false(rotated.current.some((kid) => generated.current.includes(kid)));

  const keys = JSON.parse((await cli(['keys', 'list', '--json'])).stdout) as KeyRow[];
  const statusOf = (kid: string) => keys.find((key) => key.kid === kid)?.status;
  t.deepEqual(rotated.current.map(statusOf), ['current', 'current', 'current']);
  t.deepEqual(generated.current.map(statusOf), ['retired', 'retired', 'retired']);
  t.true(keys.filter((key) => key.status === 'retired').every((key) => key.expires_at && Date.parse(key.expires_at) > Date.now()));

  const human = await cli(['keys', 'list']);
  t.regex(human.stdout, /^KID\s+USE\s+ALG\s+STATUS/);
});

test('a configuration error exits 1 with one line per problem and no stack trace', async (t) => {
  const { cli, env } = cliInstallation(t);
  const result = await cli(['clients', 'list', '--json'], { env: { ...env, PORT: 'abc' } });
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(singleErrorLine(result), /^Configuration error: PORT/);

  const two = await cli(['users', 'list'], { env: { ...env, PORT: 'abc', LOG_LEVEL: 'loud' } });
  t.is(two.code, 1);
  const lines = two.stderr.trim().split('\n');
  t.is(lines.length, 2);
  t.true(lines.every((line) => line.startsWith('Configuration error: ')));
});

test('tessera serve answers requests and exits 0 after SIGTERM', async (t) => {
  const { env } = cliInstallation(t);
  const compileCache = path.join(env.DATA_DIR!, 'compile-cache');
  const child = spawn(process.execPath, [BIN, 'serve'], {
    // One process: cluster mode has tests of its own (scale-out.test.ts).
    env: { PATH: process.env.PATH ?? '', ...env, PORT: '0', LOG_LEVEL: 'info', WORKERS: '1', TESSERA_COMPILE_CACHE: compileCache },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  const port = await eventually(async () => /"port":(\d+)/.exec(stdout)?.[1], 60_000);
  t.truthy(port, `the server logged its port; stderr: ${stderr}`);
  const discovery = await fetch(`http://localhost:${port}/.well-known/openid-configuration`);
  t.is(discovery.status, 200);
  t.is(((await discovery.json()) as { issuer: string }).issuer, `http://localhost:${port}`);

  // Before it served, the process filled the compile cache with every module of src/ (so the server
  // that replaced it loads no TypeScript stripper), and it runs with a thread pool of one thread per
  // core (WORKERS=1) plus one for the store's disk syncs.
  const sources = readdirSync(path.join(ROOT, 'src'), { recursive: true }).filter((file) => String(file).endsWith('.ts'));
  const cached = readdirSync(compileCache, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
  t.true(cached.some((entry) => entry.name.startsWith('tessera-src-')), 'the cache records the source tree it holds');
  t.true(cached.length > sources.length, `${cached.length} cache entries for ${sources.length} modules of src/`);
  if (existsSync(`/proc/${child.pid}/environ`)) {
    const environment = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
    t.true(environment.includes(`UV_THREADPOOL_SIZE=${availableParallelism() + 1}`), environment.filter((line) => line.startsWith('UV_')).join());
  }

  child.kill('SIGTERM');
  t.is(await exited, 0, stderr);
  t.regex(stdout, /"msg":"stopped"/);
  await t.throwsAsync(fetch(`http://localhost:${port}/.well-known/openid-configuration`));
});

test('the CLI is safe beside a running server, which sees new clients and rotated keys within seconds', async (t) => {
  const server = await startTestServer();
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const cli = (args: string[]) => runCli(server.cliEnv, args);
  const authorize = async (clientId: string) => {
    const url = new URL(`${server.url}/auth`);
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'https://rp.example/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGEz8Y7cT2',
      code_challenge_method: 'S256',
      state: 'xyz',
    }).toString();
    const response = await fetch(url, { redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location'), body: await response.text() };
  };
  const jwksKids = async () => {
    const body = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Array<{ kid: string }> };
    return body.keys.map((key) => key.kid);
  };

  const unknown = await authorize('no-such-client');
  t.is(unknown.status, 400, 'an unknown client gets an error page, not a redirect');
  t.regex(unknown.body, /invalid_client|client is invalid/i);

  const created = await cli(['clients', 'create', '--name', 'Beside', '--redirect-uri', 'https://rp.example/cb', '--json']);
  t.is(created.code, 0, created.stderr);
  const { client_id: clientId } = JSON.parse(created.stdout) as { client_id: string };
  const accepted = await eventually(async () => {
    const result = await authorize(clientId);
    return result.status === 303 ? result : undefined;
  });
  t.truthy(accepted, 'the server accepted the new client');
  t.regex(accepted?.location ?? '', /\/interaction\//);

  const before = await jwksKids();
  const rotated = await cli(['keys', 'rotate', '--json']);
  t.is(rotated.code, 0, rotated.stderr);
  const { current, retired } = JSON.parse(rotated.stdout) as { current: string[]; retired: string[] };
  t.deepEqual([...retired].sort(), [...before].sort(), 'the keys the server was publishing were the current ones');
  t.false(current.some((kid) => before.includes(kid)), 'new keys, not the old ones');
  const published = await eventually(async () => {
    const kids = await jwksKids();
    return current.every((kid) => kids.includes(kid)) ? kids : undefined;
  });
  t.truthy(published, 'the server publishes the new keys');
  t.true(before.every((kid) => published?.includes(kid)), 'retired keys stay published');
});
