/**
 * The "Sign in with Tessera" flow end to end: a real server on an ephemeral port, openid-client as
 * the relying party, and Tessera's own HTML pages driven over HTTP.
 */
import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { authorizationRequest, authorize, discover, newPerson, RP_CALLBACK, RP_HOME, signIn, staticClient, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

let server: TestServer;
let config: oidc.Configuration;

test.before(async () => {
  server = await startTestServer({
    clients: [
      staticClient(),
      staticClient({ client_id: 'es256-rp', id_token_signed_response_alg: 'ES256' }),
      staticClient({ client_id: 'eddsa-rp', id_token_signed_response_alg: 'EdDSA' }),
    ],
  });
  config = await discover(server.issuer);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

test('discovery advertises the code flow with PKCE S256 only and iss in authorization responses', async (t) => {
  const response = await fetch(`${server.issuer}/.well-known/openid-configuration`);
  t.is(response.status, 200);
  t.regex(response.headers.get('cache-control') ?? '', /max-age=\d+/);
  const metadata = await response.json() as Record<string, unknown>;
  t.is(metadata.issuer, server.issuer);
  t.deepEqual(metadata.response_types_supported, ['code']);
  t.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
  t.true(metadata.authorization_response_iss_parameter_supported);
  t.true((metadata.prompt_values_supported as string[]).includes('create'));
  t.deepEqual([...(metadata.id_token_signing_alg_values_supported as string[])].sort(), ['ES256', 'EdDSA', 'PS256', 'RS256']);
});

test('the password and implicit grants do not exist', async (t) => {
  const password = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${btoa('test-rp:test-rp-secret-with-plenty-of-entropy-0123456789')}` },
    body: 'grant_type=password&username=a&password=b',
  });
  t.is(password.status, 400);
  t.is(((await password.json()) as { error: string }).error, 'unsupported_grant_type');

  const implicit = await authorizationRequest(config, { response_type: 'id_token token' });
  const response = await fetch(implicit.url, { redirect: 'manual' });
  const location = new URL(response.headers.get('location')!);
  t.is(new URLSearchParams(location.hash.slice(1) || location.search).get('error'), 'unsupported_response_type');
});

test('the JWKS holds only public keys with unique kids and is cacheable', async (t) => {
  const response = await fetch(`${server.issuer}/jwks`);
  t.is(response.status, 200);
  t.regex(response.headers.get('cache-control') ?? '', /public, max-age=\d+/);
  const { keys } = await response.json() as { keys: Array<Record<string, unknown>> };
  t.true(keys.length >= 3);
  t.is(new Set(keys.map((key) => key.kid)).size, keys.length);
  for (const key of keys) {
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.false(member in key, `${String(key.kid)} exposes ${member}`);
  }
  t.deepEqual(keys.map((key) => key.kty).sort(), ['EC', 'OKP', 'RSA']);
});

test('a new person registers, consents, and the RP gets a valid ID token, access token and userinfo', async (t) => {
  const person = newPerson();
  const { tokens, callback } = await signIn(config, new UserAgent(), person, { register: true });
  t.is(callback.searchParams.get('iss'), server.issuer, 'RFC 9207 iss parameter in the authorization response');
  const claims = tokens.claims()!;
  t.is(claims.iss, server.issuer);
  t.is(claims.aud, 'test-rp');
  t.is(claims.email, person.email);
  t.is(claims.name, person.name);
  t.is(claims.email_verified, false);
  t.is(typeof claims.auth_time, 'number');
  t.is(typeof claims.at_hash, 'string');
  t.truthy(claims.nonce);
  t.is(jose.decodeProtectedHeader(tokens.id_token!).alg, 'RS256');
  t.truthy(tokens.refresh_token, 'offline_access yields a refresh token');

  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  t.is(userinfo.email, person.email);
  t.is(userinfo.sub, claims.sub);
});

test('an email is normalised, so the same mailbox in other letter case signs in', async (t) => {
  const person = newPerson();
  await signIn(config, new UserAgent(), person, { register: true });
  const { tokens } = await signIn(config, new UserAgent(), { ...person, email: `  ${person.email.toUpperCase()} ` });
  t.is(tokens.claims()!.email, person.email);
});

test('the claims released follow the requested scopes', async (t) => {
  const person = newPerson();
  const { tokens } = await signIn(config, new UserAgent(), person, { register: true, parameters: { scope: 'openid email' } });
  const claims = tokens.claims()!;
  t.is(claims.email, person.email);
  t.false('name' in claims);
  t.falsy(tokens.refresh_token, 'no offline_access, no refresh token');
});

test('a refresh token rotates on use, and presenting a rotated one revokes the whole grant', async (t) => {
  const { tokens } = await signIn(config, new UserAgent(), newPerson(), { register: true });
  const first = tokens.refresh_token!;
  const rotated = await oidc.refreshTokenGrant(config, first);
  t.truthy(rotated.refresh_token);
  t.not(rotated.refresh_token, first);

  const reuse = await t.throwsAsync(oidc.refreshTokenGrant(config, first));
  t.is((reuse as oidc.ResponseBodyError).error, 'invalid_grant');

  const afterReuse = await t.throwsAsync(oidc.refreshTokenGrant(config, rotated.refresh_token!));
  t.is((afterReuse as oidc.ResponseBodyError).error, 'invalid_grant', 'the grant was revoked, so the newest token is dead too');
  await t.throwsAsync(oidc.fetchUserInfo(config, rotated.access_token, oidc.skipSubjectCheck));
});

test('an authorization code works once; a second use fails and revokes what the first issued', async (t) => {
  const agent = new UserAgent();
  const request = await authorizationRequest(config);
  const callback = await authorize(agent, request, newPerson(), { register: true });
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
  await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck);

  const second = await t.throwsAsync(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce }));
  t.is((second as oidc.ResponseBodyError).error, 'invalid_grant');
  await t.throwsAsync(oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck), undefined, 'the first access token is revoked');
  const refresh = await t.throwsAsync(oidc.refreshTokenGrant(config, tokens.refresh_token!));
  t.is((refresh as oidc.ResponseBodyError).error, 'invalid_grant');
});

test('a redirect_uri that is not registered exactly shows the error page and never redirects', async (t) => {
  for (const redirect of [`${RP_CALLBACK}/extra`, `${RP_CALLBACK}?x=1`, 'https://evil.example/callback', RP_CALLBACK.toUpperCase()]) {
    const request = await authorizationRequest(config, { redirect_uri: redirect });
    const response = await fetch(request.url, { redirect: 'manual' });
    t.is(response.status, 400, redirect);
    t.is(response.headers.get('location'), null, redirect);
    const body = await response.text();
    t.regex(body, /asked to send you somewhere unexpected/);
    t.regex(body, /redirect_uri/);
    t.notRegex(body, /at \w+ \(/, 'no stack trace');
  }
});

test('an unknown client shows the error page and never redirects', async (t) => {
  const response = await fetch(`${server.issuer}/auth?client_id=nobody&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(RP_CALLBACK)}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`, { redirect: 'manual' });
  t.is(response.status, 400);
  t.is(response.headers.get('location'), null);
  t.regex(await response.text(), /invalid_client|client is invalid/i);
});

test('PKCE is required, plain is refused, and a verifier must match its challenge', async (t) => {
  const noChallenge = new URL(`${server.issuer}/auth`);
  for (const [name, value] of Object.entries({ client_id: 'test-rp', response_type: 'code', scope: 'openid', redirect_uri: RP_CALLBACK, state: 's' })) noChallenge.searchParams.set(name, value);
  let response = await fetch(noChallenge, { redirect: 'manual' });
  let location = new URL(response.headers.get('location')!);
  t.is(location.searchParams.get('error'), 'invalid_request');
  t.regex(location.searchParams.get('error_description')!, /PKCE/);

  noChallenge.searchParams.set('code_challenge', 'a'.repeat(43));
  noChallenge.searchParams.set('code_challenge_method', 'plain');
  response = await fetch(noChallenge, { redirect: 'manual' });
  location = new URL(response.headers.get('location')!);
  t.is(location.searchParams.get('error'), 'invalid_request');

  const agent = new UserAgent();
  const request = await authorizationRequest(config);
  const callback = await authorize(agent, request, newPerson(), { register: true });
  const wrong = await t.throwsAsync(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: request.state, expectedNonce: request.nonce }));
  t.is((wrong as oidc.ResponseBodyError).error, 'invalid_grant');
});

test('prompt=none without a session returns login_required to the RP', async (t) => {
  const request = await authorizationRequest(config, { prompt: 'none' });
  const response = await fetch(request.url, { redirect: 'manual' });
  t.true(response.status === 302 || response.status === 303);
  const location = new URL(response.headers.get('location')!);
  t.true(location.href.startsWith(RP_CALLBACK));
  t.is(location.searchParams.get('error'), 'login_required');
  t.is(location.searchParams.get('state'), request.state);
  t.is(location.searchParams.get('iss'), server.issuer);
});

test('prompt=none with a session and a grant signs in silently', async (t) => {
  const agent = new UserAgent();
  await signIn(config, agent, newPerson(), { register: true });
  const request = await authorizationRequest(config, { prompt: 'none' });
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  const callback = new URL(page.url);
  t.truthy(callback.searchParams.get('code'));
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
  t.truthy(tokens.id_token);
});

test('prompt=login and max_age=0 ask for the password again even with a session', async (t) => {
  const agent = new UserAgent();
  const person = newPerson();
  await signIn(config, agent, person, { register: true });
  for (const parameters of [{ prompt: 'login' }, { max_age: '0' }] as Record<string, string>[]) {
    const request = await authorizationRequest(config, parameters);
    const page = await agent.follow(request.url.href, RP_CALLBACK);
    t.is(page.status, 200);
    t.regex(page.body, /name="password"/, JSON.stringify(parameters));
  }
});

test('prompt=consent asks again even when consent was given', async (t) => {
  const agent = new UserAgent();
  await signIn(config, agent, newPerson(), { register: true });
  const request = await authorizationRequest(config, { prompt: 'consent' });
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  t.regex(page.body, /\/consent"/);
});

test('id_token_hint for another person than the signed-in one asks to sign in again', async (t) => {
  const alice = newPerson();
  const aliceTokens = (await signIn(config, new UserAgent(), alice, { register: true })).tokens;
  const bobAgent = new UserAgent();
  await signIn(config, bobAgent, newPerson(), { register: true });
  const request = await authorizationRequest(config, { id_token_hint: aliceTokens.id_token! });
  const page = await bobAgent.follow(request.url.href, RP_CALLBACK);
  t.regex(page.body, /name="password"/);
});

test('denying consent returns access_denied to the RP', async (t) => {
  const request = await authorizationRequest(config);
  const callback = await authorize(new UserAgent(), request, newPerson(), { register: true, consent: 'deny' });
  t.is(callback.searchParams.get('error'), 'access_denied');
  t.is(callback.searchParams.get('state'), request.state);
  t.is(callback.searchParams.get('iss'), server.issuer);
});

test('the consent page names the app and describes the scopes in plain words', async (t) => {
  const agent = new UserAgent();
  const person = newPerson();
  await signIn(config, agent, person, { register: true, parameters: { scope: 'openid' } });
  const request = await authorizationRequest(config);
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  t.regex(page.body, /Test RP/);
  t.regex(page.body, /See your email address/);
  t.regex(page.body, /See your name/);
  t.regex(page.body, /Stay connected/);
});

test('an unknown email and a wrong password get the same status and message', async (t) => {
  const person = newPerson();
  await signIn(config, new UserAgent(), person, { register: true });
  const outcomes = [];
  for (const attempt of [{ ...person, password: 'not the right password' }, { ...person, email: 'nobody@example.com' }]) {
    const agent = new UserAgent();
    const request = await authorizationRequest(config);
    const page = await agent.follow(request.url.href, RP_CALLBACK);
    const answer = await submit(agent, page, '/login', { email: attempt.email, password: attempt.password });
    outcomes.push({ status: answer.status, message: /<div class="alert"[^>]*>([^<]*)</.exec(answer.body)?.[1] });
  }
  t.deepEqual(outcomes[0], outcomes[1]);
  t.deepEqual(outcomes[0], { status: 401, message: 'Invalid email or password' });
});

test('RP-initiated logout confirms, ends the session and returns to the registered URI with state', async (t) => {
  const agent = new UserAgent();
  const { tokens } = await signIn(config, agent, newPerson(), { register: true });
  const logoutUrl = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: RP_HOME, state: 'bye' });
  const confirm = await agent.follow(logoutUrl.href, RP_HOME);
  t.is(confirm.status, 200);
  t.regex(confirm.body, /Sign out/);
  const form = readForm(confirm.body, 'session/end/confirm');
  const done = await agent.follow(new URL(form.action, confirm.url).href, RP_HOME, { form: { ...form.fields, logout: 'yes' } });
  t.is(done.status, 303);
  const back = new URL(done.url);
  t.is(back.origin + back.pathname, RP_HOME);
  t.is(back.searchParams.get('state'), 'bye');

  const request = await authorizationRequest(config, { prompt: 'none' });
  const silent = await agent.follow(request.url.href, RP_CALLBACK);
  t.is(new URL(silent.url).searchParams.get('error'), 'login_required', 'the session is gone');
});

test('logout with an unregistered post_logout_redirect_uri shows the error page and never redirects', async (t) => {
  const agent = new UserAgent();
  const { tokens } = await signIn(config, agent, newPerson(), { register: true });
  const logoutUrl = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://evil.example/', state: 'x' });
  const page = await agent.request(logoutUrl.href);
  t.is(page.status, 400);
  t.is(page.headers.get('location'), null);
  t.regex(page.body, /post_logout_redirect_uri/);
});

for (const [clientId, alg] of [['es256-rp', 'ES256'], ['eddsa-rp', 'EdDSA']] as const) {
  test(`a client registered for ${alg} gets ID tokens signed with ${alg} that verify against the JWKS`, async (t) => {
    const client = staticClient({ client_id: clientId, id_token_signed_response_alg: alg });
    const rp = await discover(server.issuer, client);
    const { tokens } = await signIn(rp, new UserAgent(), newPerson(), { register: true });
    t.is(jose.decodeProtectedHeader(tokens.id_token!).alg, alg);
    const { payload } = await jose.jwtVerify(tokens.id_token!, jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer, audience: clientId });
    t.is(payload.aud, clientId);
  });
}
