/**
 * Every `prompt` value Tessera accepts, each through to the relying party: openid-client builds the
 * request and redeems the code, Tessera's own pages are driven over HTTP with a cookie jar.
 * Registration happens once per test at most (one argon2 hash each); the browser path of
 * prompt=create is in browser.test.ts.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { authorizationRequest, discover, newPerson, RP_CALLBACK, signIn, staticClient, submit, type AuthorizationRequest, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent, type Page } from './helpers/user-agent.ts';

let server: TestServer;
let rp: oidc.Configuration;
/** A second app: a session made at `rp` has no grant for it. */
let otherRp: oidc.Configuration;

test.before(async () => {
  const other = staticClient({ client_id: 'other-rp', client_name: 'Other RP' });
  server = await startTestServer({ clients: [staticClient(), other] });
  rp = await discover(server.issuer);
  otherRp = await discover(server.issuer, other);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
});

function isRedirectToApp(page: Page): boolean {
  return page.status >= 300 && page.status < 400 && page.url.startsWith(RP_CALLBACK);
}

function heading(page: Page): string | undefined {
  return /<h1>([^<]*)<\/h1>/.exec(page.body)?.[1]?.trim();
}

/** Redeems the code the app was sent with openid-client; returns the ID token's claims. */
async function redeem(config: oidc.Configuration, request: AuthorizationRequest, page: Page) {
  const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return tokens.claims()!;
}

/** A person registered through the pages at `rp`, with the browser session and the grant that leaves. */
async function registeredAndSignedIn(): Promise<{ agent: UserAgent; person: Person; sub: string }> {
  const agent = new UserAgent();
  const person = newPerson();
  const { tokens } = await signIn(rp, agent, person, { register: true });
  return { agent, person, sub: tokens.claims()!.sub };
}

test('discovery lists exactly the prompt values the authorization endpoint accepts', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as { prompt_values_supported: string[] };
  t.deepEqual([...metadata.prompt_values_supported].sort(), ['consent', 'create', 'login', 'none']);

  for (const prompt of metadata.prompt_values_supported) {
    const page = await new UserAgent().request((await authorizationRequest(rp, { prompt })).url.href);
    t.is(new URL(page.headers.get('location') ?? '', page.url).searchParams.get('error'), prompt === 'none' ? 'login_required' : null, prompt);
  }
  // select_account is not offered (there is no account chooser), and none cannot be combined.
  for (const prompt of ['select_account', 'none login']) {
    const page = await new UserAgent().request((await authorizationRequest(rp, { prompt })).url.href);
    const location = new URL(page.headers.get('location') ?? '', page.url);
    t.true(location.href.startsWith(RP_CALLBACK), prompt);
    t.is(location.searchParams.get('error'), 'invalid_request', prompt);
  }
});

test('prompt=create opens the registration page and ends at the app signed in as the new account', async (t) => {
  const agent = new UserAgent();
  const person = newPerson();
  const request = await authorizationRequest(rp, { prompt: 'create' });
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  t.is(heading(page), 'Create your account');
  page = await submit(agent, page, '/register', { email: person.email, name: person.name!, password: person.password, password_confirmation: person.password });
  t.is(heading(page), 'Test RP wants to access your account', 'consent follows registration');
  page = await submit(agent, page, '/consent', { decision: 'allow' });
  t.true(isRedirectToApp(page), `expected the app, got ${page.status} ${heading(page) ?? page.body.slice(0, 300)}`);
  const claims = await redeem(rp, request, page);
  t.is(claims.email, person.email);

  // The browser stays signed in as that account: a silent request gets a code for the same subject.
  const silent = await authorizationRequest(rp, { prompt: 'none' });
  const again = await agent.follow(silent.url.href, RP_CALLBACK);
  t.true(isRedirectToApp(again));
  t.is((await redeem(rp, silent, again)).sub, claims.sub);
});

test('prompt=create lets a person who already has an account sign in instead', async (t) => {
  const { person, sub } = await registeredAndSignedIn();
  const agent = new UserAgent();
  const request = await authorizationRequest(rp, { prompt: 'create' });
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  page = await submit(agent, page, '/register', { email: person.email, password: person.password, password_confirmation: person.password });
  t.is(page.status, 409);
  const signInLink = /href="([^"]*\/login)"/.exec(page.body)?.[1];
  t.truthy(signInLink, 'the registration page links to the sign-in form');
  page = await agent.request(new URL(signInLink!, page.url).href);
  t.is(heading(page), 'Sign in');
  page = await submit(agent, page, '/login', { email: person.email, password: person.password });
  // The account consented to Test RP (offline_access included) in another browser: that is remembered.
  t.true(isRedirectToApp(page), `expected the app, got ${page.status} ${heading(page) ?? page.body.slice(0, 300)}`);
  t.is((await redeem(rp, request, page)).sub, sub);
});

test('prompt=none answers login_required without a session, consent_required without a grant, and a code with both', async (t) => {
  const anonymous = await authorizationRequest(rp, { prompt: 'none' });
  const refused = await new UserAgent().request(anonymous.url.href);
  t.is(new URL(refused.headers.get('location')!).searchParams.get('error'), 'login_required');

  const { agent, sub } = await registeredAndSignedIn();
  const ungranted = await authorizationRequest(otherRp, { prompt: 'none' });
  const noGrant = await agent.follow(ungranted.url.href, RP_CALLBACK);
  t.true(isRedirectToApp(noGrant));
  t.is(new URL(noGrant.url).searchParams.get('error'), 'consent_required');

  const granted = await authorizationRequest(rp, { prompt: 'none' });
  const page = await agent.follow(granted.url.href, RP_CALLBACK);
  t.true(isRedirectToApp(page));
  t.is((await redeem(rp, granted, page)).sub, sub);
});

test('prompt=login shows the sign-in form despite a session, then the code; at an app without a grant consent comes once', async (t) => {
  const { agent, person, sub } = await registeredAndSignedIn();
  for (const [config, clientName] of [[rp, undefined], [otherRp, 'Other RP']] as const) {
    // Without offline_access, which asks for consent until the account has granted it (see offlineAccessAsksConsent).
    const request = await authorizationRequest(config, { prompt: 'login', scope: 'openid email' });
    let page = await agent.follow(request.url.href, RP_CALLBACK);
    t.is(heading(page), 'Sign in');
    const signInAt = Math.floor(Date.now() / 1000);
    page = await submit(agent, page, '/login', { email: person.email, password: person.password });
    if (clientName) {
      t.is(heading(page), `${clientName} wants to access your account`);
      page = await submit(agent, page, '/consent', { decision: 'allow' });
    }
    t.true(isRedirectToApp(page), `expected the app, got ${page.status} ${heading(page) ?? page.body.slice(0, 300)}`);
    const claims = await redeem(config, request, page);
    t.is(claims.sub, sub);
    t.true((claims.auth_time as number) >= signInAt, 'auth_time is the new sign-in');
  }
});

test('prompt=consent shows consent again to a signed-in person with a grant, then the code', async (t) => {
  const { agent, sub } = await registeredAndSignedIn();
  const request = await authorizationRequest(rp, { prompt: 'consent' });
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  t.is(heading(page), 'Test RP wants to access your account');
  page = await submit(agent, page, '/consent', { decision: 'allow' });
  t.true(isRedirectToApp(page));
  t.is((await redeem(rp, request, page)).sub, sub);
});
