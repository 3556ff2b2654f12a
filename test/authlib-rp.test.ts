/**
 * A relying party that is not a Node library: authlib (Debian's python3-authlib, run by
 * /usr/bin/python3) signs a person in through a real Tessera, as a reviewer's Python app would: the
 * code flow with PKCE, ID token validation against the JWKS, userinfo and a refresh, once as a
 * confidential web client and once as a native app (`clients create --native`) listening on a
 * loopback port of its own choosing. The person's side is driven over HTTP. Without python3-authlib
 * and python3-requests these tests fail with the packages to install; they never skip.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

import test, { type ExecutionContext } from 'ava';

import { freePort } from './helpers/browser.ts';
import { runCliJson } from './helpers/cli.ts';
import { submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(import.meta.dirname, 'helpers', 'authlib-rp.py');
const MISSING = `authlib was not found under ${PYTHON}: install Debian's python3-authlib and python3-requests (as .ci/run does)`;

let server: TestServer;
let person: Person;

test.before(async () => {
  server = await startTestServer();
  person = { email: `authlib.${Date.now()}@example.com`, password: 'a passphrase for the authlib tests' };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

interface AuthlibResult {
  redirect_uri: string;
  id_token: Record<string, unknown>;
  userinfo: Record<string, unknown>;
  refreshed: boolean;
}

/** Runs authlib-rp.py, signs `person` in at the URL it prints, and returns what it reports. */
async function signInWithAuthlib(t: ExecutionContext, args: string[]): Promise<AuthlibResult> {
  const probe = spawnSync(PYTHON, ['-c', 'import authlib, requests'], { encoding: 'utf8' });
  if (probe.status !== 0) throw new Error(`${MISSING}\n${probe.error?.message ?? probe.stderr}`);
  const child = spawn(PYTHON, [SCRIPT, server.issuer, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { child.kill(); });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let result: AuthlibResult | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.startsWith('AUTHORIZE ')) {
      const url = line.slice('AUTHORIZE '.length);
      const redirectUri = new URL(url).searchParams.get('redirect_uri')!;
      const agent = new UserAgent();
      let page = await agent.follow(url, redirectUri);
      page = await submit(agent, page, '/login', { email: person.email, password: person.password }, redirectUri);
      if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' }, redirectUri);
      t.true(page.url.startsWith(`${redirectUri}?code=`), `expected the redirect to authlib's callback, got ${page.status} ${page.url}`);
      await fetch(page.url); // the person's browser arriving at the app's callback
    } else if (line.startsWith('RESULT ')) {
      result = JSON.parse(line.slice('RESULT '.length)) as AuthlibResult;
    }
  }
  const code = await exited;
  if (code !== 0 || !result) throw new Error(`authlib-rp.py exited ${code}:\n${stderr}`);
  return result;
}

test('authlib signs a person in as a web client: PKCE, a validated ID token with sid, userinfo and a refresh', async (t) => {
  const port = await freePort();
  const app = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Authlib web app', '--redirect-uri', `http://localhost:${port}/callback`]);
  const result = await signInWithAuthlib(t, [app.client_id, app.client_secret, 'localhost', String(port)]);
  t.is(result.id_token.email, person.email);
  t.is(result.id_token.aud, app.client_id);
  t.is(typeof result.id_token.sid, 'string');
  t.is(result.userinfo.sub, result.id_token.sub);
  t.true(result.refreshed);
});

test('authlib signs a person in as a native app on a loopback port it picked itself', async (t) => {
  const app = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Authlib desktop app', '--native', '--redirect-uri', 'http://127.0.0.1/callback']);
  const result = await signInWithAuthlib(t, [app.client_id, '-', '127.0.0.1', '0']);
  t.regex(result.redirect_uri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  t.not(result.redirect_uri, 'http://127.0.0.1/callback');
  t.is(result.userinfo.email, person.email);
  t.true(result.refreshed);
});
