/**
 * Native apps (RFC 8252, issue #13): `clients create --native` makes a public client whose loopback
 * redirect URIs match any port and which may use a private-use scheme; openid-client builds the
 * requests and redeems the codes, the pages are driven over HTTP. A client that could never work
 * (a web client with a private-use scheme) is refused when it is created, by the CLI and the admin
 * API, with the reason oidc-provider would otherwise give at every authorization request.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { ConfigError } from '../src/config.ts';
import { runCli, runCliJson, singleErrorLine } from './helpers/cli.ts';
import { staticClient, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent } from './helpers/user-agent.ts';

let server: TestServer;
let person: Person;
let adminToken: string;

test.before(async () => {
  server = await startTestServer();
  person = { email: `native.${Date.now()}@example.com`, password: 'a passphrase for the native app tests' };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  const admin = `${server.issuer}/admin/api`;
  const robot = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', admin, '--scope', 'admin', '--role', 'admin', '--json']);
  const robotConfig = await oidc.discovery(new URL(server.issuer), robot.client_id, {}, oidc.ClientSecretBasic(robot.client_secret), { execute: [oidc.allowInsecureRequests] });
  adminToken = (await oidc.clientCredentialsGrant(robotConfig, { resource: admin, scope: 'admin' })).access_token;
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

async function createClient(body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.issuer}/admin/api/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'relying_party', ...body }),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

async function storedClientNames(): Promise<unknown[]> {
  const listed = await runCliJson<Array<{ client_name?: unknown }>>(server.cliEnv, ['clients', 'list', '--json']);
  return listed.map((client) => client.client_name);
}

/** One sign-in through openid-client with `redirectUri`, the pages driven in a fresh browser; returns the token response. */
async function signInAt(config: oidc.Configuration, redirectUri: string) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const agent = new UserAgent();
  let page = await agent.follow(url.href, redirectUri);
  if (page.body.includes('/login"')) page = await submit(agent, page, '/login', { email: person.email, password: person.password }, redirectUri);
  const askedForConsent = page.body.includes('/consent"');
  if (askedForConsent) page = await submit(agent, page, '/consent', { decision: 'allow' }, redirectUri);
  if (!page.url.startsWith(redirectUri)) throw new Error(`expected a redirect to ${redirectUri}, got ${page.status} at ${page.url}:\n${page.body.slice(0, 800)}`);
  const callback = new URL(page.url);
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
  return { callback, tokens, askedForConsent };
}

test('a native app with a private-use scheme and a loopback redirect URI signs in through both, on any loopback port', async (t) => {
  const created = await runCliJson<{ client_id: string; client_secret?: string }>(server.cliEnv, [
    'clients', 'create', '--name', 'Desktop app', '--native', '--redirect-uri', 'com.example.app:/cb', '--redirect-uri', 'http://127.0.0.1/cb', '--json',
  ]);
  t.is(created.client_secret, undefined, 'a native app is public');
  const config = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });

  const loopback = await signInAt(config, 'http://127.0.0.1:51234/cb');
  t.is(loopback.callback.origin, 'http://127.0.0.1:51234', 'the port the app listens on, not the registered one');
  t.is(loopback.tokens.claims()?.email, person.email);

  const scheme = await signInAt(config, 'com.example.app:/cb');
  t.is(scheme.callback.protocol, 'com.example.app:');
  t.is(scheme.tokens.claims()?.sub, loopback.tokens.claims()?.sub);
  t.true(loopback.askedForConsent && scheme.askedForConsent, 'a native app that is not first-party is asked at every sign-in (RFC 8252 8.6)');

  const elsewhere = oidc.buildAuthorizationUrl(config, { redirect_uri: 'http://127.0.0.1:51234/other', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
  const refused = await new UserAgent().request(elsewhere.href);
  t.is(refused.status, 400, 'only the port is free: another path is still refused');
});

test('a first-party native app never shows the consent page', async (t) => {
  const created = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Our phone app', '--native', '--first-party', '--redirect-uri', 'com.example.ours:/cb', '--json']);
  const config = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const signedIn = await signInAt(config, 'com.example.ours:/cb');
  t.false(signedIn.askedForConsent);
  t.is(signedIn.tokens.claims()?.email, person.email);
});

test('the CLI refuses a web client with a private-use scheme, and a native one oidc-provider would refuse, in one line each, storing nothing', async (t) => {
  // --public is how a mobile app was registered before --native: accepted, then refused at every authorization request.
  const web = await runCli(server.cliEnv, ['clients', 'create', '--name', 'Web with scheme', '--public', '--redirect-uri', 'com.example.app:/cb']);
  t.is(web.code, 1);
  t.regex(singleErrorLine(web), /^tessera: com\.example\.app:\/cb uses a private-use scheme, which only a native app may use \(.*--native/);

  // Tessera's own rules let this through; oidc-provider's (RFC 8252 7.2: claimed https URIs are not loopback) do not.
  const claimed = await runCli(server.cliEnv, ['clients', 'create', '--name', 'Native on https loopback', '--native', '--redirect-uri', 'https://127.0.0.1/cb']);
  t.is(claimed.code, 1);
  t.is(singleErrorLine(claimed), 'tessera: redirect_uris for native clients using claimed HTTPS URIs must not be using 127.0.0.1 as hostname');

  const bare = await runCli(server.cliEnv, ['clients', 'create', '--name', 'Bare scheme', '--native', '--redirect-uri', 'myapp:/cb']);
  t.is(bare.code, 1);
  t.regex(singleErrorLine(bare), /myapp:\/cb must use https, http on a loopback address, or a private-use scheme named after a reversed domain name/);

  const names = await storedClientNames();
  for (const name of ['Web with scheme', 'Native on https loopback', 'Bare scheme']) t.false(names.includes(name), `${name} was not stored`);
});

test('the admin API refuses the same clients with 400 and the reason in fields, and creates a native app', async (t) => {
  const web = await createClient({ name: 'Web with scheme', public: true, redirect_uris: ['com.example.app:/cb'] });
  t.is(web.status, 400);
  t.is(web.body.error, 'invalid_request');
  t.regex(String((web.body.fields as Record<string, string>).redirect_uris), /only a native app may use/);

  const claimed = await createClient({ name: 'Native on https loopback', application_type: 'native', redirect_uris: ['https://[::1]/cb'] });
  t.is(claimed.status, 400);
  t.deepEqual(claimed.body.fields, { redirect_uris: 'redirect_uris for native clients using claimed HTTPS URIs must not be using [::1] as hostname' });

  const native = await createClient({ name: 'Phone app', application_type: 'native', redirect_uris: ['com.example.phone:/cb', 'http://[::1]/cb'] });
  t.is(native.status, 201);
  t.like(native.body, { application_type: 'native', token_endpoint_auth_method: 'none' });
  t.false('client_secret' in native.body);

  const names = await storedClientNames();
  t.true(names.includes('Phone app'));
  t.false(names.includes('Web with scheme'));
  t.false(names.includes('Native on https loopback'));
});

test('clients.json: a web client with a private-use scheme stops startup with the reason, in one line naming it', async (t) => {
  const client = staticClient({ client_id: 'mobile-as-web', client_secret: undefined, token_endpoint_auth_method: 'none', redirect_uris: ['com.example.app:/cb'] });
  const error = await t.throwsAsync(startTestServer({ clients: [client] }), { instanceOf: ConfigError });
  t.regex(error!.message, /^Configuration error: .*clients\.json: client mobile-as-web: redirect_uris must only contain web uris$/m);
});
