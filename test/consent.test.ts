/**
 * Consent is remembered per account and client (issue #13): a second browser session is not asked
 * again for what the person already allowed, revoking the app on the account page forgets it, and
 * first-party apps never show the consent page. On the embedded store and on the Mongo lane, since
 * the grant is found by account in the store.
 */
import test, { type ExecutionContext } from 'ava';
import * as oidc from 'openid-client';

import { startMongoLane, type MongoLane } from './helpers/mongo-lane.ts';
import { authorizationRequest, discover, RP_CALLBACK, staticClient, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

/** A prefix no redirect ever matches: follow every hop. */
const NOWHERE = 'never:';
const FIRST_PARTY = staticClient({ client_id: 'own-app', client_secret: 'own-app-secret-with-plenty-of-entropy-0123456789', client_name: 'Our own app', tessera_first_party: true });

interface Lane {
  server: TestServer;
  rp: oidc.Configuration;
  ownApp: oidc.Configuration;
}

const lanes: Record<'sqlite' | 'mongo', Lane | undefined> = { sqlite: undefined, mongo: undefined };
let mongo: MongoLane | undefined;
let counter = 0;

async function startLane(env: Record<string, string> = {}): Promise<Lane> {
  const server = await startTestServer({ clients: [staticClient(), FIRST_PARTY], env });
  return { server, rp: await discover(server.issuer), ownApp: await discover(server.issuer, FIRST_PARTY) };
}

test.before(async () => {
  mongo = await startMongoLane();
  [lanes.sqlite, lanes.mongo] = await Promise.all([startLane(), startLane({ MONGODB_URI: mongo.uri })]);
});

test.after.always(async () => {
  for (const lane of Object.values(lanes)) {
    await lane?.server.close();
    if (lane) removeDir(lane.server.dataDir);
  }
  await mongo?.stop();
});

async function newAccount(server: TestServer): Promise<Person> {
  counter += 1;
  const person = { email: `consent${counter}.${Date.now()}@example.com`, password: `an unusual passphrase ${counter} for consent` };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  return person;
}

/** One "Sign in with" at the RP in `agent`: signs in if asked, allows consent if asked, and says whether it was. */
async function signIn(rp: oidc.Configuration, agent: UserAgent, person: Person, scope: string) {
  const request = await authorizationRequest(rp, { scope });
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  if (page.body.includes('/login"')) page = await submit(agent, page, '/login', { email: person.email, password: person.password });
  const askedForConsent = page.body.includes('/consent"');
  if (askedForConsent) page = await submit(agent, page, '/consent', { decision: 'allow' });
  if (!page.url.startsWith(RP_CALLBACK)) throw new Error(`expected a redirect to the RP, got ${page.status}:\n${page.body.slice(0, 1500)}`);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url), {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return { askedForConsent, tokens };
}

/** The account page in `agent`, signing in to it if the browser has no Tessera session yet. */
async function accountPage(server: TestServer, agent: UserAgent, person: Person): Promise<Page> {
  let page = await agent.follow(`${server.issuer}/account`, NOWHERE);
  if (page.body.includes('/login"')) page = await submit(agent, page, '/login', { email: person.email, password: person.password }, NOWHERE);
  if (page.status !== 200 || !page.url.endsWith('/account')) throw new Error(`expected the account page, got ${page.status} at ${page.url}`);
  return page;
}

for (const store of ['sqlite', 'mongo'] as const) {
  const lane = (t: ExecutionContext) => {
    const found = lanes[store];
    if (!found) t.fail(`the ${store} lane did not start`);
    return found!;
  };

  test(`on ${store} a second browser session is not asked again for scopes the account already granted the client`, async (t) => {
    const { server, rp } = lane(t);
    const person = await newAccount(server);
    const first = await signIn(rp, new UserAgent(), person, 'openid profile offline_access');
    t.true(first.askedForConsent, 'the first sign-in asks');

    const second = await signIn(rp, new UserAgent(), person, 'openid profile offline_access');
    t.false(second.askedForConsent, 'a fresh browser session for the same account and client is not asked again');
    t.is(second.tokens.claims()?.sub, first.tokens.claims()?.sub);
    t.truthy(second.tokens.refresh_token, 'the remembered offline_access consent still brings a refresh token');
    t.true(second.tokens.scope?.split(' ').includes('profile'));

    const more = await signIn(rp, new UserAgent(), person, 'openid profile email');
    t.true(more.askedForConsent, 'a scope not yet granted is asked for');
    const after = await signIn(rp, new UserAgent(), person, 'openid email');
    t.false(after.askedForConsent, 'and then remembered with the rest');
  });

  test(`on ${store} revoking the app on the account page makes the next sign-in ask for consent again`, async (t) => {
    const { server, rp } = lane(t);
    const person = await newAccount(server);
    const browser = new UserAgent();
    t.true((await signIn(rp, browser, person, 'openid profile')).askedForConsent);
    t.false((await signIn(rp, new UserAgent(), person, 'openid profile')).askedForConsent);

    const page = await accountPage(server, browser, person);
    const form = readForm(page.body, 'action="/account/apps/revoke"');
    const revoked = await browser.request(new URL(form.action, page.url).href, { form: { ...form.fields, client_id: 'test-rp', confirm: 'yes' } });
    t.is(revoked.status, 303);

    t.true((await signIn(rp, browser, person, 'openid profile')).askedForConsent, 'the same browser is asked again');
    t.false((await signIn(rp, new UserAgent(), person, 'openid profile')).askedForConsent, 'and the new answer is remembered in turn');
  });

  test(`on ${store} a first-party client never shows the consent page and gets its refresh token`, async (t) => {
    const { server, ownApp } = lane(t);
    const person = await newAccount(server);
    const first = await signIn(ownApp, new UserAgent(), person, 'openid profile email offline_access');
    t.false(first.askedForConsent);
    t.truthy(first.tokens.refresh_token, 'offline_access is granted with the rest');
    t.deepEqual(first.tokens.scope?.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
    const refreshed = await oidc.refreshTokenGrant(ownApp, first.tokens.refresh_token!);
    t.truthy(refreshed.access_token);
  });
}
