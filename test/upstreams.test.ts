/**
 * Signing in through upstream identity providers, over HTTP with JavaScript off: a real Tessera, a
 * real upstream on loopback (a bare oidc-provider, or a GitHub-shaped OAuth 2.0 server), and
 * openid-client as the app signing people in through Tessera.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import test, { type ExecutionContext } from 'ava';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';

import { runCli, runCliJson } from './helpers/cli.ts';

import { eventually } from './helpers/eventually.ts';
import { startMongoLane } from './helpers/mongo-lane.ts';
import { authorizationRequest, discover, RP_CALLBACK, staticClient } from './helpers/relying-party.ts';
import { freePort } from './helpers/browser.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { HostAgent, startGithubUpstream, startOidcUpstream, type OidcUpstream } from './helpers/upstream-fixtures.ts';
import { readForm, type Page } from './helpers/user-agent.ts';

const PASSWORD = 'correct horse battery staple';

interface Setup {
  server: TestServer;
  upstream: OidcUpstream;
  rp: oidc.Configuration;
}

async function setUp(t: ExecutionContext, options: { trustEmail?: boolean; env?: Record<string, string>; clients?: Record<string, unknown>[] } = {}): Promise<Setup> {
  const server = await startTestServer({ clients: options.clients ?? [staticClient()], ...(options.env && { env: options.env }) });
  t.teardown(() => server.close());
  const upstream = await startOidcUpstream([`${server.issuer}/federation/acme/callback`]);
  t.teardown(() => upstream.close());
  await server.withServices((services) => services.upstreams.create({
    id: 'acme', name: 'Acme ID', issuer: upstream.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret, trustEmail: options.trustEmail,
  }));
  return { server, upstream, rp: await discover(server.issuer) };
}

function pathOf(page: Page): string {
  return new URL(page.url).pathname;
}

/** Submits the form whose action contains `actionPart`, following redirects across hosts. */
function submit(agent: HostAgent, page: Page, actionPart: string, values: Record<string, string> = {}): Promise<Page> {
  const form = readForm(page.body, actionPart);
  return agent.follow(new URL(form.action, page.url).href, RP_CALLBACK, { form: { ...form.fields, ...values } });
}

/** From the app's authorization request to the page after "Continue with Acme ID" (the app's callback when all goes through). */
async function continueWithUpstream(setup: { rp: oidc.Configuration }, agent: HostAgent, parameters: Record<string, string> = {}, upstreamId = 'acme') {
  const request = await authorizationRequest(setup.rp, parameters);
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  let page = await submit(agent, login, `/federation/${upstreamId}`);
  if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' });
  return { request, login, page };
}

async function tokensFrom(setup: { rp: oidc.Configuration }, request: Awaited<ReturnType<typeof authorizationRequest>>, page: Page) {
  if (!page.url.startsWith(RP_CALLBACK)) throw new Error(`expected the app's callback, got ${page.status} ${page.url}:\n${page.body.slice(0, 1500)}`);
  return oidc.authorizationCodeGrant(setup.rp, new URL(page.url), {
    pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true,
  });
}

async function registerWithPassword(server: TestServer, email: string): Promise<string> {
  return server.withServices(async (services) => (await services.accounts.register({ email, password: PASSWORD })).sub);
}

test('an upstream added with the CLI beside a running server appears on its sign-in page within STORE_POLL_SECONDS, and goes when deleted', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(() => server.close());
  const rp = await discover(server.issuer);
  const signInPage = async () => (await new HostAgent().follow((await authorizationRequest(rp)).url.href, RP_CALLBACK)).body;
  t.notRegex(await signInPage(), /Continue with/, 'none yet (and the server has read the empty list)');
  const created = await runCli(server.cliEnv, ['upstreams', 'create', '--id', 'corp', '--name', 'Corp SSO', '--issuer', 'https://sso.corp.example',
    '--client-id', 'tessera', '--client-secret-stdin', '--json'], 'corp-secret');
  t.is(created.code, 0, created.stderr);
  t.truthy(await eventually(async () => (/Continue with Corp SSO/.test(await signInPage()) ? true : undefined), { what: 'the new button', timeoutMs: 5_000 }));
  t.is((await runCli(server.cliEnv, ['upstreams', 'delete', 'corp'])).code, 0);
  t.truthy(await eventually(async () => (/Continue with Corp SSO/.test(await signInPage()) ? undefined : true), { what: 'the button gone', timeoutMs: 5_000 }));
});

test('the sign-in page offers "Continue with" each upstream, as a form that works without JavaScript', async (t) => {
  const setup = await setUp(t);
  const request = await authorizationRequest(setup.rp);
  const login = await new HostAgent().follow(request.url.href, RP_CALLBACK);
  t.is(login.status, 200);
  t.regex(login.body, /Continue with Acme ID/);
  const form = readForm(login.body, '/federation/acme');
  t.regex(form.action, /^\/interaction\/[^/]+\/federation\/acme$/);
  t.truthy(form.fields._csrf);
});

test('a first upstream sign-in creates an account without a password from the upstream\'s profile, and the same upstream subject signs in to it again', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-1001', email: 'Grace@Example.com', email_verified: true, name: 'Grace Hopper', given_name: 'Grace', family_name: 'Hopper' };
  const first = await continueWithUpstream(setup, new HostAgent());
  const tokens = await tokensFrom(setup, first.request, first.page);
  const claims = tokens.claims()!;
  t.deepEqual(claims.amr, ['fed']);
  t.is(claims.acr, 'urn:tessera:loa:1');
  t.is(claims.email, 'grace@example.com');
  t.is(claims.email_verified, false, 'email_verified comes from the upstream only for --trust-email upstreams');
  t.is(claims.name, 'Grace Hopper');

  const stored = await setup.server.withServices(async (services) => ({
    account: await services.accounts.findBySub(claims.sub),
    identities: await services.identities.list(claims.sub),
  }));
  t.is(stored.account?.passwordHash, undefined, 'no password hash');
  t.like(stored.account, { email: 'grace@example.com', givenName: 'Grace', familyName: 'Hopper' });
  t.deepEqual(stored.identities.map((identity) => [identity.upstreamId, identity.subject]), [['acme', 'acme-1001']]);
  const listed = await runCliJson<Array<{ sub: string; identities: unknown[] }>>(setup.server.cliEnv, ['users', 'list']);
  t.like(listed.find((user) => user.sub === claims.sub)?.identities, [{ upstream: 'acme', subject: 'acme-1001', email: 'grace@example.com' }], 'users list shows it');

  // Another browser, the same person at the upstream (even with another address there now): the same account.
  setup.upstream.user = { ...setup.upstream.user, email: 'grace.h@example.com' };
  const again = await continueWithUpstream(setup, new HostAgent());
  t.is((await tokensFrom(setup, again.request, again.page)).claims()!.sub, claims.sub);

  // A password sign-in to the upstream-born account is refused like any wrong password.
  const request = await authorizationRequest(setup.rp);
  const agent = new HostAgent();
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const refused = await submit(agent, login, '/login', { email: 'grace@example.com', password: 'any password at all' });
  t.is(refused.status, 401);
});

test('an untrusted upstream whose email matches an existing account never signs in as it; proving the password links it', async (t) => {
  const setup = await setUp(t);
  const victim = await registerWithPassword(setup.server, 'ada@example.com');
  setup.upstream.user = { sub: 'attacker-7', email: 'ada@example.com', email_verified: true, name: 'Not Ada' };

  const agent = new HostAgent();
  const attempt = await continueWithUpstream(setup, agent);
  t.false(attempt.page.url.startsWith(RP_CALLBACK), 'no code for the app without proof');
  t.is(attempt.page.status, 200);
  t.regex(attempt.page.body, /An account with ada@example\.com already exists/);
  t.deepEqual(await setup.server.withServices((services) => services.identities.list(victim)), [], 'nothing linked yet');

  // A wrong password links nothing and signs in nobody.
  const wrong = await submit(agent, attempt.page, '/login', { email: 'ada@example.com', password: 'not the password' });
  t.is(wrong.status, 401);
  t.deepEqual(await setup.server.withServices((services) => services.identities.list(victim)), []);

  // Abandoning the proof and coming back with the upstream again is still refused.
  const retry = await continueWithUpstream(setup, new HostAgent());
  t.false(retry.page.url.startsWith(RP_CALLBACK));

  // The person who holds the account proves it: the link is made, and the sign-in goes through.
  const proved = await submit(agent, wrong, '/login', { email: 'ada@example.com', password: PASSWORD });
  const page = proved.body.includes('/consent"') ? await submit(agent, proved, '/consent', { decision: 'allow' }) : proved;
  t.true(page.url.startsWith(RP_CALLBACK), `${page.status} ${page.url}`);
  const linked = await setup.server.withServices((services) => services.identities.list(victim));
  t.deepEqual(linked.map((identity) => [identity.upstreamId, identity.subject]), [['acme', 'attacker-7']]);
  const next = await continueWithUpstream(setup, new HostAgent());
  t.is((await tokensFrom(setup, next.request, next.page)).claims()!.sub, victim, 'from now on the upstream signs in to the linked account');
});

test('proving an account that has a second factor takes the second factor too before anything is linked', async (t) => {
  const setup = await setUp(t);
  const sub = await registerWithPassword(setup.server, 'tom@example.com');
  const secret = await setup.server.withServices(async (services) => {
    const { secret: totpSecret } = await services.secondFactors.startTotpEnrolment(sub);
    await services.secondFactors.confirmTotp(sub, OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(totpSecret) }));
    return totpSecret;
  });
  setup.upstream.user = { sub: 'acme-tom', email: 'tom@example.com', email_verified: true };
  const agent = new HostAgent();
  const attempt = await continueWithUpstream(setup, agent);
  t.regex(attempt.page.body, /already exists/);
  const secondFactor = await submit(agent, attempt.page, '/login', { email: 'tom@example.com', password: PASSWORD });
  t.true(pathOf(secondFactor).endsWith('/second-factor'), `${secondFactor.status} ${secondFactor.url}`);
  t.deepEqual(await setup.server.withServices((services) => services.identities.list(sub)), [], 'the password alone links nothing');
  const code = OTPAuth.TOTP.generate({ secret: OTPAuth.Secret.fromBase32(secret), timestamp: Date.now() + 30_000 });
  let page = await submit(agent, secondFactor, '/second-factor/totp', { code });
  if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' });
  t.true(page.url.startsWith(RP_CALLBACK), `${page.status} ${page.url}`);
  t.deepEqual((await setup.server.withServices((services) => services.identities.list(sub))).map((identity) => identity.subject), ['acme-tom']);
  // From now on the upstream signs in to Tom's account, and still asks for his second factor.
  const next = await continueWithUpstream(setup, new HostAgent());
  t.true(pathOf(next.page).endsWith('/second-factor'), next.page.url);
});

test('proving a different account than the one with that address links nothing', async (t) => {
  const setup = await setUp(t);
  const ada = await registerWithPassword(setup.server, 'ada2@example.com');
  const bob = await registerWithPassword(setup.server, 'bob@example.com');
  setup.upstream.user = { sub: 'someone-9', email: 'ada2@example.com', email_verified: true };
  const agent = new HostAgent();
  const attempt = await continueWithUpstream(setup, agent);
  t.regex(attempt.page.body, /already exists/);
  const asBob = await submit(agent, attempt.page, '/login', { email: 'bob@example.com', password: PASSWORD });
  t.true(asBob.status === 303 || asBob.status === 302 || asBob.status === 200);
  await setup.server.withServices(async (services) => {
    t.deepEqual(await services.identities.list(ada), []);
    t.deepEqual(await services.identities.list(bob), []);
  });
});

test('a --trust-email upstream that says the address is verified links to the existing account; unverified, it must prove it', async (t) => {
  const setup = await setUp(t, { trustEmail: true });
  const existing = await registerWithPassword(setup.server, 'lin@example.com');
  setup.upstream.user = { sub: 'acme-unverified', email: 'lin@example.com', email_verified: false };
  const unverified = await continueWithUpstream(setup, new HostAgent());
  t.false(unverified.page.url.startsWith(RP_CALLBACK));
  t.regex(unverified.page.body, /already exists/);

  setup.upstream.user = { sub: 'acme-lin', email: 'lin@example.com', email_verified: true };
  const trusted = await continueWithUpstream(setup, new HostAgent());
  t.is((await tokensFrom(setup, trusted.request, trusted.page)).claims()!.sub, existing);

  // A new account from a trusted upstream carries the upstream's verified address as verified.
  setup.upstream.user = { sub: 'acme-new', email: 'new@example.com', email_verified: true };
  const fresh = await continueWithUpstream(setup, new HostAgent());
  t.is((await tokensFrom(setup, fresh.request, fresh.page)).claims()!.email_verified, true);
});

test('a client with --require-mfa still asks for a second factor after an upstream sign-in', async (t) => {
  const setup = await setUp(t, { clients: [staticClient({ tessera_require_mfa: true })] });
  setup.upstream.user = { sub: 'acme-mfa', email: 'mfa@example.com', email_verified: true };
  const { page } = await continueWithUpstream(setup, new HostAgent());
  t.false(page.url.startsWith(RP_CALLBACK), 'no code before a second factor');
  t.true(pathOf(page).endsWith('/enrol'), `the enrolment page, got ${page.status} ${page.url}`);
});

test('a disabled account cannot sign in through its upstream identity', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-off', email: 'off@example.com', email_verified: true };
  const first = await continueWithUpstream(setup, new HostAgent());
  const sub = (await tokensFrom(setup, first.request, first.page)).claims()!.sub;
  await setup.server.withServices((services) => services.accounts.setDisabled('off@example.com', true));
  const { page } = await continueWithUpstream(setup, new HostAgent());
  t.is(page.status, 403);
  t.regex(page.body, /cannot sign in right now/);
  t.regex(page.body, /Use another way to sign in/);
  t.truthy(sub);
});

test('upstream_hint (and kc_idp_hint) sends the person straight to that upstream, past the sign-in page', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-hint', email: 'hint@example.com', email_verified: true };
  for (const parameter of ['upstream_hint', 'kc_idp_hint']) {
    const request = await authorizationRequest(setup.rp, { [parameter]: 'acme' });
    const agent = new HostAgent();
    let page = await agent.follow(request.url.href, RP_CALLBACK);
    if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' });
    t.true(page.url.startsWith(RP_CALLBACK), `${parameter}: ${page.status} ${page.url}`);
    t.deepEqual((await tokensFrom(setup, request, page)).claims()!.amr, ['fed']);
  }
  // An unknown upstream in the hint is ignored: the sign-in page as usual.
  const request = await authorizationRequest(setup.rp, { upstream_hint: 'nobody' });
  const page = await new HostAgent().follow(request.url.href, RP_CALLBACK);
  t.regex(page.body, /Continue with Acme ID/);
});

test('GitHub-shaped upstreams (OAuth 2.0, no ID token) sign in with the numeric user id and a verified address from the API', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(() => server.close());
  const github = await startGithubUpstream();
  t.teardown(() => github.close());
  await server.withServices((services) => services.upstreams.create({
    id: 'gh', preset: 'github', clientId: github.clientId, clientSecret: github.clientSecret,
    authorizationEndpoint: `${github.url}/login/oauth/authorize`, tokenEndpoint: `${github.url}/login/oauth/access_token`,
    userEndpoint: `${github.url}/user`, emailsEndpoint: `${github.url}/user/emails`,
  }));
  github.emails = [
    { email: 'unverified@example.com', primary: false, verified: false },
    { email: 'octo@example.com', primary: true, verified: true },
  ];
  const setup = { rp: await discover(server.issuer) };
  const { request, login, page } = await continueWithUpstream(setup, new HostAgent(), {}, 'gh');
  t.regex(login.body, /Continue with GitHub/);
  const claims = (await tokensFrom(setup, request, page)).claims()!;
  t.is(claims.email, 'octo@example.com');
  t.deepEqual(github.apiCalls, ['/user', '/user/emails']);
  const identities = await server.withServices((services) => services.identities.list(claims.sub));
  t.deepEqual(identities.map((identity) => [identity.upstreamId, identity.subject]), [['gh', '583231']]);
});

test('an account made in advance through an untrusted upstream with someone else\'s address loses that identity when the address\'s owner resets the password', async (t) => {
  const setup = await setUp(t);
  // Someone signs up at an upstream that does not vouch for addresses, with Claire's address.
  setup.upstream.user = { sub: 'squatter', email: 'claire@example.com', email_verified: true };
  const squat = await continueWithUpstream(setup, new HostAgent());
  const sub = (await tokensFrom(setup, squat.request, squat.page)).claims()!.sub;

  // Claire finds her address taken, and takes it back through the reset link sent to her mailbox.
  const agent = new HostAgent();
  const forgot = await agent.request(`${setup.server.issuer}/password/forgot`);
  const asked = await submit(agent, forgot, '/password/forgot', { email: 'claire@example.com' });
  t.true(asked.status < 400);
  const outbox = path.join(setup.server.dataDir, 'outbox');
  const link = await eventually(() => {
    if (!existsSync(outbox)) return undefined;
    for (const file of readdirSync(outbox)) {
      const message = readFileSync(path.join(outbox, file), 'utf8').replace(/=\r?\n/g, '').replaceAll('=3D', '=');
      const found = /https?:\/\/[^\s"<>]+\/password\/reset\?token=[^\s"<>&]+/.exec(message)?.[0];
      if (found) return found;
    }
    return undefined;
  }, { what: 'the reset link in the outbox', timeoutMs: 10_000 });
  const form = await agent.request(link!);
  const newPassword = 'taking my account back today';
  const changed = await submit(agent, form, '/password/reset', { password: newPassword, password_confirmation: newPassword });
  t.true(changed.status < 400, `${changed.status}: ${changed.body.replace(/[\s\S]*<main/, '').slice(0, 1500)}`);
  t.deepEqual(await setup.server.withServices((services) => services.identities.list(sub)), [], 'the squatter\'s identity is gone');

  // The squatter's upstream identity no longer signs in to Claire's account.
  const again = await continueWithUpstream(setup, new HostAgent());
  t.false(again.page.url.startsWith(RP_CALLBACK));
  t.regex(again.page.body, /already exists/);
});

// --- concurrency: parallel first sign-ins of one upstream identity make one account, on both stores --

for (const lane of ['sqlite', 'mongodb'] as const) {
  test(`${lane}: parallel first sign-ins of one upstream identity make exactly one account, and no request fails with a 500`, async (t) => {
    const mongo = lane === 'mongodb' ? await startMongoLane() : undefined;
    if (mongo) t.teardown(() => mongo.stop());
    const setup = await setUp(t, mongo ? { env: { MONGODB_URI: mongo.uri } } : {});
    setup.upstream.user = { sub: 'acme-race', email: 'race@example.com', email_verified: true };
    const callbackPrefix = `${setup.server.issuer}/federation/acme/callback`;
    // Four browsers each get as far as Tessera's callback, then all answer at once.
    const browsers = await Promise.all([1, 2, 3, 4].map(async () => {
      const agent = new HostAgent();
      const request = await authorizationRequest(setup.rp);
      const login = await agent.follow(request.url.href, RP_CALLBACK);
      const form = readForm(login.body, '/federation/acme');
      const atCallback = await agent.follow(new URL(form.action, login.url).href, callbackPrefix, { form: form.fields });
      return { agent, callback: atCallback.url };
    }));
    const pages = await Promise.all(browsers.map(({ agent, callback }) => agent.follow(callback, RP_CALLBACK)));
    for (const page of pages) t.true(page.status < 500, `${page.status} at ${page.url}`);
    const accounts = await setup.server.withServices((services) => services.accounts.list());
    t.is(accounts.filter((account) => account.email === 'race@example.com').length, 1);
    const identity = await setup.server.withServices((services) => services.identities.find('acme', 'acme-race'));
    t.is(identity?.accountSub, accounts[0]?.sub, 'the identity points at the one account');
  });
}

test('another Tessera works as the upstream: its own sign-in page, password and consent, then back into this sign-in', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(() => server.close());
  // On 127.0.0.1, as the README suggests, so the two do not share cookies.
  const port = await freePort();
  const upstreamTessera = await startTestServer({ env: { PORT: String(port), ISSUER: `http://127.0.0.1:${port}` } });
  t.teardown(() => upstreamTessera.close());
  const client = await upstreamTessera.withServices(async (services) => {
    await services.accounts.register({ email: 'mae@example.com', password: PASSWORD, name: 'Mae Jemison' });
    return services.clients.createRelyingParty({ name: 'Tessera on localhost', redirectUris: [`${server.issuer}/federation/other/callback`] });
  });
  await server.withServices((services) => services.upstreams.create({
    id: 'other', name: 'Other Tessera', issuer: upstreamTessera.issuer, clientId: client.client_id, clientSecret: client.client_secret!,
  }));
  const setup = { rp: await discover(server.issuer) };
  const agent = new HostAgent();
  const { request, page: upstreamLogin } = await continueWithUpstream(setup, agent, {}, 'other');
  t.true(upstreamLogin.url.startsWith(upstreamTessera.issuer), upstreamLogin.url);
  let page = await submit(agent, upstreamLogin, '/login', { email: 'mae@example.com', password: PASSWORD });
  if (page.body.includes('/consent"') && page.url.startsWith(upstreamTessera.issuer)) page = await submit(agent, page, '/consent', { decision: 'allow' });
  if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' });
  const claims = (await tokensFrom(setup, request, page)).claims()!;
  t.is(claims.email, 'mae@example.com');
  t.is(claims.name, 'Mae Jemison');
  t.deepEqual(claims.amr, ['fed']);
});

// --- failures: a readable page with a way on, never a 500, never a half-made account ------------

async function failurePage(t: ExecutionContext, page: Page, pattern: RegExp): Promise<void> {
  t.true(page.status >= 400 && page.status < 500, `a 4xx page, got ${page.status}`);
  t.regex(page.headers.get('content-type') ?? '', /html/);
  t.regex(page.body, pattern);
  t.false(page.url.startsWith(RP_CALLBACK));
}

async function accountCount(server: TestServer): Promise<number> {
  return server.withServices(async (services) => (await services.accounts.list()).length);
}

test('a refusal at the upstream (error=access_denied) gives a page to try again or use another way', async (t) => {
  const setup = await setUp(t);
  setup.upstream.deny = true;
  const { page } = await continueWithUpstream(setup, new HostAgent());
  await failurePage(t, page, /You did not allow the sign-in at Acme ID/);
  t.regex(page.body, /href="\/interaction\/[^/"]+\/federation\/acme"[^>]*>Try again/);
  t.regex(page.body, /href="\/interaction\/[^/"]+\/login"[^>]*>Use another way to sign in/);
  t.is(await accountCount(setup.server), 0);
});

test('a replayed or forged state is refused, and a callback from another browser is too', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-replay', email: 'replay@example.com', email_verified: true };
  const agent = new HostAgent();
  const request = await authorizationRequest(setup.rp);
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  // Stop at Tessera's callback, to hold on to it.
  const callbackPrefix = `${setup.server.issuer}/federation/acme/callback`;
  const form = readForm(login.body, '/federation/acme');
  const atCallback = await agent.follow(new URL(form.action, login.url).href, callbackPrefix, { form: form.fields });
  const callback = new URL(atCallback.url);

  // Mix-up: the answer meant for one upstream, delivered at another's callback, is refused (and uses the state up).
  const elsewhere = new URL(callback);
  elsewhere.pathname = '/federation/other/callback';
  await failurePage(t, await agent.request(elsewhere.href), /does not belong to a sign-in started in this browser/);

  const forged = new URL(callback);
  forged.searchParams.set('state', 'made-up');
  await failurePage(t, await agent.request(forged.href), /does not belong to a sign-in started in this browser/);
  await failurePage(t, await new HostAgent().request(callback.href), /does not belong to a sign-in started in this browser/);

  // Each of those took the state: the real browser's answer is now refused too, and a replay after that.
  await failurePage(t, await agent.request(callback.href), /does not belong|used already/);
  t.is(await accountCount(setup.server), 0);
});

test('an answer whose RFC 9207 iss names another issuer is refused (mix-up), and makes no account', async (t) => {
  const setup = await setUp(t);
  const agent = new HostAgent();
  const request = await authorizationRequest(setup.rp);
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const form = readForm(login.body, '/federation/acme');
  const atCallback = await agent.follow(new URL(form.action, login.url).href, `${setup.server.issuer}/federation/acme/callback`, { form: form.fields });
  const callback = new URL(atCallback.url);
  t.is(callback.searchParams.get('iss'), setup.upstream.issuer, 'the upstream sends iss');
  callback.searchParams.set('iss', 'https://evil.example');
  const page = await agent.follow(callback.href, RP_CALLBACK);
  await failurePage(t, page, /This answer did not come from Acme ID/);
  t.is(await accountCount(setup.server), 0);
});

test('the state is single use: the same answer twice signs in once', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-once', email: 'once@example.com', email_verified: true };
  const agent = new HostAgent();
  const request = await authorizationRequest(setup.rp);
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const callbackPrefix = `${setup.server.issuer}/federation/acme/callback`;
  const form = readForm(login.body, '/federation/acme');
  const atCallback = await agent.follow(new URL(form.action, login.url).href, callbackPrefix, { form: form.fields });
  const answers = await Promise.all([agent.request(atCallback.url), agent.request(atCallback.url)]);
  t.deepEqual(answers.map((answer) => answer.status).sort(), [303, 400]);
});

test('an ID token that fails validation is refused and makes no account', async (t) => {
  const setup = await setUp(t);
  setup.upstream.spoilIdTokens = true;
  const { page } = await continueWithUpstream(setup, new HostAgent());
  await failurePage(t, page, /ID token that failed validation/);
  t.is(await accountCount(setup.server), 0);
});

test('an upstream that gives no email address gets a page saying so, and no account', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-noemail', name: 'No Mail' };
  const { page } = await continueWithUpstream(setup, new HostAgent());
  await failurePage(t, page, /did not share an email address/);
  t.is(await accountCount(setup.server), 0);
  t.deepEqual(await setup.server.withServices((services) => services.identities.find('acme', 'acme-noemail')), undefined);

  // An address disguised with an invisible character is refused like at registration, not stored.
  setup.upstream.user = { sub: 'acme-disguised', email: 'ad\u200Ba@example.com', email_verified: true };
  const disguised = await continueWithUpstream(setup, new HostAgent());
  await failurePage(t, disguised.page, /gave an email address Tessera cannot use \(Email addresses cannot contain invisible or control characters\)/);
  t.is(await accountCount(setup.server), 0);
});

test('an unreachable upstream and one too slow to answer both give a page with a way on', async (t) => {
  const server = await startTestServer({ clients: [staticClient()], env: { UPSTREAM_TIMEOUT_SECONDS: '1' } });
  t.teardown(() => server.close());
  const upstream = await startOidcUpstream([`${server.issuer}/federation/slow/callback`]);
  t.teardown(() => upstream.close());
  const gone = await startOidcUpstream([]);
  const goneIssuer = gone.issuer;
  await gone.close();
  await server.withServices(async (services) => {
    await services.upstreams.create({ id: 'gone', name: 'Gone ID', issuer: goneIssuer, clientId: 'x', clientSecret: 'y' });
    await services.upstreams.create({ id: 'slow', name: 'Slow ID', issuer: upstream.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret });
  });
  const setup = { rp: await discover(server.issuer) };

  const unreachable = await continueWithUpstream(setup, new HostAgent(), {}, 'gone');
  await failurePage(t, unreachable.page, /Gone ID cannot be reached right now/);
  t.regex(unreachable.page.body, /Use another way to sign in/);

  upstream.tokenDelayMs = 2500;
  const slow = await continueWithUpstream(setup, new HostAgent(), {}, 'slow');
  await failurePage(t, slow.page, /Slow ID did not answer in time/);
  t.is(await accountCount(server), 0);
});

test('an upstream deleted while someone is mid-flow gives a page to use another way', async (t) => {
  const setup = await setUp(t);
  const agent = new HostAgent();
  const request = await authorizationRequest(setup.rp);
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const callbackPrefix = `${setup.server.issuer}/federation/acme/callback`;
  const form = readForm(login.body, '/federation/acme');
  const atCallback = await agent.follow(new URL(form.action, login.url).href, callbackPrefix, { form: form.fields });
  await setup.server.withServices((services) => services.upstreams.delete('acme'));
  // The running server notices within STORE_POLL_SECONDS (1 s in tests): wait until its sign-in page drops the button.
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const fresh = await new HostAgent().follow((await authorizationRequest(setup.rp)).url.href, RP_CALLBACK);
    if (!fresh.body.includes('Continue with Acme ID')) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const page = await agent.follow(atCallback.url, RP_CALLBACK);
  await failurePage(t, page, /no longer offered/);
  t.regex(page.body, /Use another way to sign in/);
  t.is(await accountCount(setup.server), 0);
});

test('upstream sign-ins, failures and links are in the audit trail', async (t) => {
  const setup = await setUp(t);
  setup.upstream.user = { sub: 'acme-audit', email: 'audit@example.com', email_verified: true };
  const first = await continueWithUpstream(setup, new HostAgent());
  const sub = (await tokensFrom(setup, first.request, first.page)).claims()!.sub;
  setup.upstream.deny = true;
  await continueWithUpstream(setup, new HostAgent());
  const events = await setup.server.withServices(async (services) => {
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const page = await services.audit.query({ type: ['identity.signed_in', 'identity.linked', 'signin.succeeded', 'signin.failed'], limit: 20 });
      if (page.events.some((event) => event.type === 'signin.failed')) return page.events;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return [];
  });
  t.truthy(events.find((event) => event.type === 'identity.linked' && event.sub === sub && event.details?.upstream === 'acme'));
  t.truthy(events.find((event) => event.type === 'identity.signed_in' && event.sub === sub && event.clientId === 'test-rp' && event.details?.upstream === 'acme' && event.details?.created === true));
  t.truthy(events.find((event) => event.type === 'signin.succeeded' && event.sub === sub && (event.details?.amr as string[] | undefined)?.includes('fed')));
  t.truthy(events.find((event) => event.type === 'signin.failed' && event.details?.factor === 'upstream' && event.details?.reason === 'access_denied'));
});

test('callbacks count against the per-address sign-in limit: past it, 429 with Retry-After', async (t) => {
  const setup = await setUp(t, { env: { RATE_LIMIT_SIGNIN_PER_IP: '3/300' } });
  const callback = `${setup.server.issuer}/federation/acme/callback?code=x&state=guess`;
  const answers = [];
  for (let attempt = 0; attempt < 4; attempt += 1) answers.push(await new HostAgent().request(callback));
  t.deepEqual(answers.map((answer) => answer.status), [400, 400, 400, 429]);
  t.truthy(answers[3]!.headers.get('retry-after'));
});

test('the admin API adds, lists, shows and removes upstreams (never their secret), and shows a user\'s identities', async (t) => {
  const setup = await setUp(t);
  const admin = `${setup.server.issuer}/admin/api`;
  const machine = await runCliJson<{ client_id: string; client_secret: string }>(setup.server.cliEnv, [
    'clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', admin, '--scope', 'admin', '--role', 'admin',
  ]);
  const config = await oidc.discovery(new URL(setup.server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret), { execute: [oidc.allowInsecureRequests] });
  const token = (await oidc.clientCredentialsGrant(config, { resource: admin, scope: 'admin' })).access_token;
  const api = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`${admin}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, text, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
  };

  const created = await api('POST', '/upstreams', { id: 'gl', preset: 'gitlab', client_id: 'gl-client', client_secret: 'gl-secret-value-123', trust_email: true });
  t.is(created.status, 201, created.text);
  t.like(created.body, { id: 'gl', name: 'GitLab', kind: 'oidc', issuer: 'https://gitlab.com', trust_email: true, source: 'store', redirect_uri: `${setup.server.issuer}/federation/gl/callback` });
  t.false(created.text.includes('gl-secret-value-123'));
  t.is((await api('POST', '/upstreams', { id: 'gl', preset: 'gitlab', client_id: 'x', client_secret: 'y' })).status, 409);
  const refused = await api('POST', '/upstreams', { id: 'plain', issuer: 'http://id.example.com', client_id: 'x', client_secret: 'y' });
  t.is(refused.status, 400);
  t.regex(String(refused.body.error_description), /must use https/);

  const listed = await api('GET', '/upstreams');
  t.deepEqual((listed.body.items as Array<{ id: string }>).map((upstream) => upstream.id), ['acme', 'gl']);
  t.false(listed.text.includes('gl-secret-value-123') || listed.text.includes(setup.upstream.clientSecret));
  t.is((await api('GET', '/upstreams/gl')).status, 200);
  t.is((await api('DELETE', '/upstreams/gl')).status, 204);
  t.is((await api('GET', '/upstreams/gl')).status, 404);

  setup.upstream.user = { sub: 'acme-admin-view', email: 'viewed@example.com', email_verified: true };
  const flow = await continueWithUpstream(setup, new HostAgent());
  const sub = (await tokensFrom(setup, flow.request, flow.page)).claims()!.sub;
  const user = await api('GET', `/users/${sub}`);
  t.like(user.body, { password: false, identities: [{ upstream: 'acme', subject: 'acme-admin-view', email: 'viewed@example.com' }] });
});

// --- the account page: linked identities, link another, unlink (never the last way to sign in) ----

const NOWHERE = 'never:';

test('the account page lists linked identities, links another with a round trip, and unlinks all but the last way to sign in', async (t) => {
  const setup = await setUp(t);
  const { server, upstream } = setup;

  // Someone who signed up at the upstream: their only way in is that identity.
  upstream.user = { sub: 'acme-only', email: 'only@example.com', email_verified: true };
  const upstreamBorn = new HostAgent();
  const login = await upstreamBorn.follow(`${server.issuer}/account`, NOWHERE);
  const page = await submit(upstreamBorn, login, '/federation/acme');
  const account = page.url.endsWith('/account') ? page : await upstreamBorn.follow(page.url, NOWHERE);
  t.is(account.status, 200, account.body.slice(0, 500));
  t.regex(account.body, /Acme ID<\/strong> as only@example\.com/);
  const refused = await submit(upstreamBorn, account, '/account/identities/unlink', { confirm: 'yes' });
  t.is(refused.status, 400);
  t.regex(refused.body, /This is your only way to sign in/);

  // Someone with a password links Acme ID from the account page, then unlinks it.
  const sub = await registerWithPassword(server, 'pat@example.com');
  const agent = new HostAgent();
  const signInPage = await agent.follow(`${server.issuer}/account`, NOWHERE);
  const mine = await submit(agent, signInPage, '/login', { email: 'pat@example.com', password: PASSWORD });
  t.regex(mine.body, /Link Acme ID/);
  upstream.user = { sub: 'acme-pat', email: 'pat.elsewhere@example.com', email_verified: false };
  const linked = await submit(agent, mine, '/account/identities/link');
  t.is(linked.status, 200);
  t.regex(linked.body, /It is linked/);
  t.deepEqual((await server.withServices((services) => services.identities.list(sub))).map((identity) => identity.subject), ['acme-pat']);
  // From now on the upstream signs in to Pat's account.
  const next = await continueWithUpstream(setup, new HostAgent());
  t.is((await tokensFrom(setup, next.request, next.page)).claims()!.sub, sub);

  const unlinked = await submit(agent, linked, '/account/identities/unlink', { confirm: 'yes' });
  t.regex(unlinked.body, /It is unlinked/);
  t.deepEqual(await server.withServices((services) => services.identities.list(sub)), []);

  // An upstream identity that already signs in to another account is not moved to this one.
  upstream.user = { sub: 'acme-only', email: 'only@example.com', email_verified: true };
  agent.forget(upstream.issuer);
  const taken = await submit(agent, unlinked, '/account/identities/link');
  t.is(taken.status, 409);
  t.regex(taken.body, /already signs in to another Tessera account/);
});
