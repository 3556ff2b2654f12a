/**
 * OpenID Connect Back-Channel Logout end to end: an app made with the CLI
 * (--backchannel-logout-uri), a real HTTP receiver on a loopback port standing in for its server,
 * logout tokens checked with jose against Tessera's JWKS, one test per way a session ends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { BackchannelLogout } from '../src/domain/backchannel-logout.ts';
import { runCli, runCliJson, singleErrorLine } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { linkIn, startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { newPerson, RP_CALLBACK, signIn, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

const NOWHERE = 'http://never.example/';

interface Received {
  path: string;
  token: string;
  at: number;
}

/** A relying party's back-channel logout endpoint: records each logout token; answers as `answer` says. */
interface Receiver {
  url: string;
  received: Received[];
  /** How to answer the next requests at a path: a status, after an optional delay. */
  answers: Map<string, Array<{ status: number; delayMs?: number }>>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const answers = new Map<string, Array<{ status: number; delayMs?: number }>>();
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => { body += chunk; });
    request.on('end', () => {
      const path = request.url ?? '';
      received.push({ path, token: new URLSearchParams(body).get('logout_token') ?? '', at: Date.now() });
      const answer = answers.get(path)?.shift() ?? { status: 200 };
      setTimeout(() => response.writeHead(answer.status, { 'cache-control': 'no-store' }).end(), answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    received,
    answers,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

let server: TestServer;
let mail: MailCatcher;
let receiver: Receiver;
/** Back-channel logout to /shop. */
let shop: { config: oidc.Configuration; clientId: string };
let jwks: ReturnType<typeof jose.createRemoteJWKSet>;

async function relyingParty(path: string, extra: string[] = []): Promise<{ config: oidc.Configuration; clientId: string }> {
  const created = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, [
    'clients', 'create', '--name', `App ${path}`, '--redirect-uri', RP_CALLBACK, '--backchannel-logout-uri', `${receiver.url}${path}`, ...extra, '--json',
  ]);
  await server.host.refresh();
  const config = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.ClientSecretBasic(created.client_secret), { execute: [oidc.allowInsecureRequests] });
  return { config, clientId: created.client_id };
}

test.before(async () => {
  [mail, receiver] = await Promise.all([startMailCatcher(), startReceiver()]);
  server = await startTestServer({ env: { SMTP_URL: mail.url } });
  jwks = jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  shop = await relyingParty('/shop', ['--backchannel-logout-session-required']);
});

test.after.always(async () => {
  await server?.close();
  if (server) removeDir(server.dataDir);
  await mail?.close();
  await receiver?.close();
});

/** A new person signed in to `app` in a fresh browser; returns the browser and the ID token's claims. */
async function signedIn(app = shop, person: Person = newPerson()) {
  const agent = new UserAgent();
  const { tokens } = await signIn(app.config, agent, person, { register: true });
  const claims = tokens.claims()!;
  return { agent, person, claims, idToken: tokens.id_token! };
}

/** The logout token that arrives at `path` for `sid`, verified as section 2.6 asks. */
async function logoutTokenFor(t: { is(a: unknown, b: unknown, m?: string): void; truthy(a: unknown, m?: string): void; false(a: boolean, m?: string): void }, path: string, clientId: string, sub: string, sid: string) {
  const arrived = await eventually(async () => {
    for (const entry of receiver.received.filter((candidate) => candidate.path === path)) {
      const { payload, protectedHeader } = await jose.jwtVerify(entry.token, jwks, { issuer: server.issuer, audience: clientId, typ: 'logout+jwt' });
      if (payload.sid === sid) return { payload, protectedHeader, entry };
    }
    return undefined;
  }, { what: `a logout token at ${path} for session ${sid}` });
  const { payload } = arrived;
  t.is(payload.sub, sub);
  t.truthy(payload.iat);
  t.truthy(payload.jti);
  t.is(JSON.stringify(payload.events), JSON.stringify({ 'http://schemas.openid.net/event/backchannel-logout': {} }));
  t.false('nonce' in payload, 'a logout token has no nonce');
  return arrived;
}

/** Signs in to the account page in `agent` (its Tessera session is already there) and returns the page. */
async function accountPage(agent: UserAgent, person: Person): Promise<Page> {
  let page = await agent.follow(`${server.issuer}/account`, NOWHERE);
  if (page.body.includes('/login"')) page = await submit(agent, page, '/login', { email: person.email, password: person.password }, NOWHERE);
  if (!page.url.endsWith('/account')) throw new Error(`expected the account page, got ${page.status} at ${page.url}:\n${page.body.slice(0, 800)}`);
  return page;
}

async function post(agent: UserAgent, page: Page, action: string, values: Record<string, string> = {}): Promise<Page> {
  const form = readForm(page.body, `action="${action}"`);
  return agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, ...values } });
}

test('discovery advertises back-channel logout with sessions, and ID tokens carry sid', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  t.true(metadata.backchannel_logout_supported);
  t.true(metadata.backchannel_logout_session_supported);
  const { claims } = await signedIn();
  t.is(typeof claims.sid, 'string');
});

test('RP-initiated logout sends the app a logout token for the session, and the page does not wait for it', async (t) => {
  const slow = await relyingParty('/slow');
  const { agent, claims, idToken } = await signedIn(slow);
  receiver.answers.set('/slow', [{ status: 200, delayMs: 3000 }]);
  const logout = await agent.follow(`${server.issuer}/session/end?id_token_hint=${idToken}&client_id=${slow.clientId}`, NOWHERE);
  const form = readForm(logout.body, '/session/end/confirm');
  const started = Date.now();
  const done = await agent.follow(new URL(form.action, logout.url).href, NOWHERE, { form: { ...form.fields, logout: 'yes' } });
  const took = Date.now() - started;
  t.is(done.status, 200);
  t.true(done.body.includes('signed out'));
  t.true(took < 2500, `the logout page answered in ${took} ms, while the app's server takes 3 s`);
  await logoutTokenFor(t, '/slow', slow.clientId, claims.sub, String(claims.sid));
});

test('"Sign out everywhere else" on the account page sends logout tokens for the sessions it ends', async (t) => {
  const { person, claims } = await signedIn();
  const elsewhere = new UserAgent();
  const page = await accountPage(elsewhere, person);
  const ended = await post(elsewhere, page, '/account/sessions/end-others', { confirm: 'yes' });
  t.is(ended.status, 303);
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('signing one session out on the account page sends a logout token for that session', async (t) => {
  const { agent, person, claims } = await signedIn();
  const page = await accountPage(agent, person);
  const form = readForm(page.body, 'action="/account/sessions/end"');
  const ended = await agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, confirm: 'yes' } });
  t.is(ended.status, 303);
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('a password reset sends logout tokens for every session it ends', async (t) => {
  const { person, claims } = await signedIn();
  const browser = new UserAgent();
  const forgot = await browser.request(`${server.issuer}/password/forgot`);
  const asked = await post(browser, forgot, '/password/forgot', { email: person.email });
  t.is(asked.status, 303);
  const message = await mail.waitFor((caught) => caught.to === person.email && caught.subject === 'Reset your password');
  const form = await browser.request(linkIn(message, `${server.issuer}/password/reset?token=`));
  const password = 'a brand new passphrase after the reset';
  const reset = await post(browser, form, '/password/reset', { password, password_confirmation: password });
  t.true(reset.status < 400, reset.body.slice(0, 300));
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('tessera users disable ends the user\'s sessions and sends their apps logout tokens', async (t) => {
  const { person, claims } = await signedIn();
  const disabled = await runCli(server.cliEnv, ['users', 'disable', person.email]);
  t.is(disabled.code, 0, disabled.stderr);
  t.regex(disabled.stdout, /Signed out of 1 session/);
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('the admin API ending a user\'s sessions sends their apps logout tokens', async (t) => {
  const ADMIN = `${server.issuer}/admin/api`;
  const machine = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Ops robot', '--grant', 'client_credentials', '--resource', ADMIN, '--scope', 'admin', '--role', 'admin', '--json']);
  await server.host.refresh();
  const robot = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret), { execute: [oidc.allowInsecureRequests] });
  const { access_token: token } = await oidc.clientCredentialsGrant(robot, { scope: 'admin', resource: ADMIN });
  const { claims } = await signedIn();
  const response = await fetch(`${ADMIN}/users/${claims.sub}/sessions`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  t.is(response.status, 200, await response.clone().text());
  t.deepEqual(await response.json(), { ended: 1 });
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('the admin API disabling a user ends their sessions and sends their apps logout tokens', async (t) => {
  const ADMIN = `${server.issuer}/admin/api`;
  const machine = await runCliJson<{ client_id: string; client_secret: string }>(server.cliEnv, ['clients', 'create', '--name', 'Ops robot 2', '--grant', 'client_credentials', '--resource', ADMIN, '--scope', 'admin', '--role', 'admin', '--json']);
  await server.host.refresh();
  const robot = await oidc.discovery(new URL(server.issuer), machine.client_id, {}, oidc.ClientSecretBasic(machine.client_secret), { execute: [oidc.allowInsecureRequests] });
  const { access_token: token } = await oidc.clientCredentialsGrant(robot, { scope: 'admin', resource: ADMIN });
  const { claims } = await signedIn();
  const response = await fetch(`${ADMIN}/users/${claims.sub}`, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ disabled: true }) });
  t.is(response.status, 200, await response.text());
  await logoutTokenFor(t, '/shop', shop.clientId, claims.sub, String(claims.sid));
});

test('in production a receiver on loopback is refused when sending, and the failure is reported', async (t) => {
  const before = receiver.received.length;
  const outcomes: string[] = [];
  const sender = new BackchannelLogout({
    issuer: server.issuer,
    production: true,
    retryDelaysMs: [],
    findClient: async () => ({ backchannel_logout_uri: `${receiver.url}/production` }),
    signingKeys: async () => server.withServices(async ({ keys }) => (await keys.material()).signingKeys),
    onOutcome: (outcome, { error }) => outcomes.push(`${outcome}: ${(error as Error | undefined)?.message ?? ''}`),
  });
  sender.notify('some-client', 'some-sub', 'some-sid');
  await sender.idle();
  t.is(outcomes.length, 1);
  t.regex(outcomes[0]!, /^failed: localhost is a loopback or private address, refused in production/);
  t.is(receiver.received.length, before, 'nothing reached the receiver');
});

test('a receiver that fails is tried again, and the failure is counted', async (t) => {
  const flaky = await relyingParty('/flaky');
  const { person, claims } = await signedIn(flaky);
  receiver.answers.set('/flaky', [{ status: 500 }]);
  const metric = async (outcome: string) => {
    const text = await (await fetch(`${server.issuer}/metrics`)).text();
    return Number(new RegExp(`tessera_backchannel_logout_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 'NaN');
  };
  const retriedBefore = await metric('retried');
  const elsewhere = new UserAgent();
  await post(elsewhere, await accountPage(elsewhere, person), '/account/sessions/end-others', { confirm: 'yes' });
  await logoutTokenFor(t, '/flaky', flaky.clientId, claims.sub, String(claims.sid));
  const attempts = await eventually(() => {
    const arrived = receiver.received.filter((candidate) => candidate.path === '/flaky');
    return arrived.length >= 2 ? arrived : undefined;
  }, { what: 'the logout token sent again after the 500' });
  const [first, second] = attempts.map((attempt) => jose.decodeJwt(attempt.token));
  t.is(second!.sid, first!.sid, 'the same session');
  t.not(second!.jti, first!.jti, 'in a fresh token (an app that did act on the first may reject its jti as replayed)');
  t.true(await metric('retried') > retriedBefore);
  t.true(await eventually(async () => (await metric('delivered')) > 0, { what: 'the delivery to be counted' }));
});

test('clients create --backchannel-logout-uri is checked: with its session flag only, not for machine clients, and no loopback address in production', async (t) => {
  const usage = async (args: string[], message: RegExp) => {
    const refused = await runCli(server.cliEnv, ['clients', 'create', '--name', 'x', ...args]);
    t.is(refused.code, 2, args.join(' '));
    t.regex(singleErrorLine(refused), message);
  };
  await usage(['--redirect-uri', RP_CALLBACK, '--backchannel-logout-session-required'], /--backchannel-logout-session-required needs --backchannel-logout-uri/);
  await usage(['--grant', 'client_credentials', '--resource', 'https://api.example.com', '--scope', 's', '--backchannel-logout-uri', `${receiver.url}/x`], /--backchannel-logout-uri is for relying parties/);

  const production = { ...server.cliEnv, NODE_ENV: 'production', TESSERA_SECRET: 'a production secret of at least thirty-two characters', ISSUER: 'https://id.example.com' };
  const refused = await runCli(production, ['clients', 'create', '--name', 'x', '--redirect-uri', 'https://rp.example.com/cb', '--backchannel-logout-uri', 'https://localhost:8443/logout']);
  t.is(refused.code, 1);
  t.regex(singleErrorLine(refused), /back-channel logout URI: https:\/\/localhost:8443\/logout points at a loopback or private address, which is refused in production/);

  const stored = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Flagged', '--redirect-uri', RP_CALLBACK, '--backchannel-logout-uri', `${receiver.url}/flagged`, '--backchannel-logout-session-required', '--json']);
  const metadata = await server.withServices(({ clients }) => clients.findMetadata(stored.client_id));
  t.is(metadata?.backchannel_logout_uri, `${receiver.url}/flagged`);
  t.true(metadata?.backchannel_logout_session_required);
});
