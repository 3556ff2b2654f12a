/**
 * Resource indicators across the code flow (RFC 8707), through openid-client and the real pages:
 * any client may ask for an API the operator registered, with the person's consent, and the
 * consent page names it; the access token's `aud` is exactly that API, also after a refresh;
 * role-limited scopes stay limited; an API that names its clients (`resources create --client`)
 * refuses every other client; Tessera's own admin API is never reached this way.
 */
import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { runCli } from './helpers/cli.ts';
import { authorizationRequest, discover, newPerson, RP_CALLBACK, staticClient, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

const API = 'https://notes.example.com/api';

async function createApi(server: TestServer, ...extra: string[]) {
  const created = await runCli(server.cliEnv, [
    'resources', 'create', '--audience', API, '--name', 'Notes API', '--scope', 'notes:read', '--scope', 'notes:write', '--scope-role', 'notes:write=editor', '--json', ...extra,
  ]);
  if (created.code !== 0) throw new Error(created.stderr);
  return JSON.parse(created.stdout) as Record<string, unknown>;
}

test('a client allowed no API by name gets a token for a registered API with the person\'s consent: the page names the API, aud is exactly the API, kept on refresh, role-limited scopes withheld', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  await createApi(server);
  const config = await discover(server.issuer);
  const agent = new UserAgent();
  const person = newPerson();
  const request = await authorizationRequest(config, { scope: 'openid offline_access notes:read notes:write', resource: API });

  let page = await agent.follow(request.url.href, RP_CALLBACK);
  const registration = await agent.request(new URL(readForm(page.body, '/login').action.replace(/\/login$/, '/register'), page.url).href);
  page = await submit(agent, { ...registration, url: page.url }, '/register', { email: person.email, password: person.password, password_confirmation: person.password, name: '' });
  t.true(page.body.includes('/consent"'), page.body.slice(0, 500));
  t.regex(page.body, /Use <strong class="api-name">Notes API<\/strong> \(<span class="api-audience">https:\/\/notes\.example\.com\/api<\/span>\)/);
  t.notRegex(page.body, /registered itself/, 'an operator-registered client is not flagged');
  page = await submit(agent, page, '/consent', { decision: 'allow' });
  t.true(page.url.startsWith(RP_CALLBACK), page.body.slice(0, 500));

  const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce }, { resource: API });
  const claims = jose.decodeJwt(tokens.access_token);
  t.is(claims.aud, API, 'aud is exactly the resource, not an array with the client');
  t.is(claims.scope, 'notes:read', 'notes:write is limited to editors');

  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API });
  t.is(jose.decodeJwt(refreshed.access_token).aud, API);
  const again = await oidc.refreshTokenGrant(config, refreshed.refresh_token!);
  t.is(jose.decodeJwt(again.access_token).aud, API, 'a refresh without resource keeps the granted one');
});

test('an API that names the clients it accepts refuses any other client in the code flow, and the admin API is never granted by consent', async (t) => {
  const server = await startTestServer({ clients: [staticClient(), staticClient({ client_id: 'named-rp', client_name: 'Named RP' })] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const created = await createApi(server, '--client', 'named-rp');
  t.deepEqual(created.clients, ['named-rp']);
  t.not((await runCli(server.cliEnv, ['resources', 'create', '--audience', 'https://other.example.com', '--scope', 'x', '--client', 'nobody'])).code, 0, 'an unknown client is refused');

  const config = await discover(server.issuer);
  for (const resource of [API, `${server.issuer}/admin/api`]) {
    const request = await authorizationRequest(config, { scope: 'openid', resource });
    const page = await new UserAgent().follow(request.url.href, RP_CALLBACK);
    t.true(page.url.startsWith(RP_CALLBACK), `${resource}: ${page.status} ${page.body.slice(0, 300)}`);
    t.is(new URL(page.url).searchParams.get('error'), 'invalid_target', resource);
  }
  const named = await discover(server.issuer, staticClient({ client_id: 'named-rp' }));
  const request = await authorizationRequest(named, { scope: 'openid notes:read', resource: API });
  const page = await new UserAgent().follow(request.url.href, RP_CALLBACK);
  t.true(page.body.includes('/login"'), 'the named client is let through to sign-in');
});
