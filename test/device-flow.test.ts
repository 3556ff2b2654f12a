/**
 * The device authorization grant (RFC 8628) end to end: a device client made with the CLI, the device
 * side driven by openid-client (initiateDeviceAuthorization, pollDeviceAuthorizationGrant), the
 * person's side through Tessera's own pages over HTTP.
 */
import test from 'ava';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import { runCli, runCliJson, singleErrorLine } from './helpers/cli.ts';
import { eventually } from './helpers/eventually.ts';
import { newPerson, submit, type Person } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { UserAgent, type Page } from './helpers/user-agent.ts';

const DEVICE_UA = 'LivingRoomTV/2.1 (SmartOS)';

let server: TestServer;
/** Short-lived codes, for expiry. */
let strict: TestServer;
/** A low limit on wrong user codes per address, for guessing (its own server: the limit is per address, and tests share one). */
let guarded: TestServer;
let device: oidc.Configuration;
let strictDevice: oidc.Configuration;
let person: Person;

async function deviceClient(on: TestServer): Promise<oidc.Configuration> {
  const created = await runCliJson<{ client_id: string }>(on.cliEnv, ['clients', 'create', '--name', 'Living-room TV', '--grant', 'device_code', '--public', '--json']);
  await on.host.refresh();
  return oidc.discovery(new URL(on.issuer), created.client_id, {}, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: (url, options) => fetch(url, { ...options, headers: { ...Object.fromEntries(new Headers(options.headers)), 'user-agent': DEVICE_UA } } as RequestInit),
  });
}

test.before(async () => {
  [server, strict, guarded] = await Promise.all([
    startTestServer({ env: { DEVICE_POLL_INTERVAL: '1' } }),
    startTestServer({ env: { DEVICE_POLL_INTERVAL: '1', DEVICE_CODE_TTL: '2' } }),
    startTestServer({ env: { RATE_LIMIT_USER_CODE_PER_IP: '3/300' } }),
  ]);
  [device, strictDevice] = await Promise.all([deviceClient(server), deviceClient(strict)]);
  person = newPerson();
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password, name: person.name }).then(() => undefined));
});

test.after.always(async () => {
  for (const running of [server, strict, guarded]) {
    await running?.close();
    if (running) removeDir(running.dataDir);
  }
});

/** From the confirmation page on: Continue, sign in, consent; returns the last page. */
async function approve(agent: UserAgent, confirmation: Page): Promise<Page> {
  let page = await submit(agent, confirmation, '/device', { confirm: 'yes' }, 'http://never/');
  if (page.body.includes('/login"')) page = await submit(agent, page, '/login', { email: person.email, password: person.password }, 'http://never/');
  if (page.body.includes('/consent"')) {
    t0Consent = page;
    page = await submit(agent, page, '/consent', { decision: 'allow' }, 'http://never/');
  }
  return page;
}
let t0Consent: Page | undefined;

async function pollOnce(on: TestServer, clientId: string, deviceCode: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${on.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: clientId }),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

test('a device signs a person in with the code prefilled from verification_uri_complete, and gets ID, access and refresh tokens', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  t.is(metadata.device_authorization_endpoint, `${server.issuer}/device/auth`);
  t.true((metadata.grant_types_supported as string[]).includes('urn:ietf:params:oauth:grant-type:device_code'));

  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid profile email offline_access' });
  t.is(started.verification_uri, `${server.issuer}/device`);
  t.is(started.interval, 1);
  t.regex(started.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  const polling = oidc.pollDeviceAuthorizationGrant(device, started);

  const agent = new UserAgent();
  const form = await agent.request(started.verification_uri_complete!);
  t.is(form.status, 200);
  t.regex(form.headers.get('content-security-policy') ?? '', /script-src 'self'(;|$)/);
  t.false(form.body.includes('<script'), 'the page does not submit itself');
  t.true(form.body.includes(`value="${started.user_code}"`));

  const confirmation = await submit(agent, form, '/device', {}, 'http://never/');
  t.is(confirmation.status, 200);
  t.true(confirmation.body.includes('Living-room TV'), 'the device client is named');
  t.true(confirmation.body.includes(DEVICE_UA), 'the device that asked is described');
  t.true(confirmation.body.includes(started.user_code));

  const done = await approve(agent, confirmation);
  t.true(t0Consent?.body.includes(DEVICE_UA), 'consent names the device too');
  t.is(done.status, 200);
  t.true(done.body.includes('Device connected'));

  const tokens = await polling;
  t.truthy(tokens.access_token);
  t.truthy(tokens.refresh_token);
  const claims = tokens.claims()!;
  t.is(claims.email, person.email);
  t.is(claims.aud, device.clientMetadata().client_id);
  const { payload } = await jose.jwtVerify(tokens.id_token!, jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer });
  t.is(payload.sub, claims.sub);

  const refreshed = await oidc.refreshTokenGrant(device, tokens.refresh_token!);
  t.truthy(refreshed.access_token);
  const userinfo = await oidc.fetchUserInfo(device, refreshed.access_token, claims.sub);
  t.is(userinfo.email, person.email);
});

test('a code typed in lower case without its dash is the same code', async (t) => {
  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
  const agent = new UserAgent();
  const form = await agent.request(started.verification_uri);
  t.false(form.body.includes('value="BCDF'), 'nothing is prefilled without the complete URI');
  const confirmation = await submit(agent, form, '/device', { user_code: started.user_code.replace('-', '').toLowerCase() }, 'http://never/');
  t.is(confirmation.status, 200);
  t.true(confirmation.body.includes(started.user_code));
  const done = await approve(agent, confirmation);
  t.is(done.status, 200);
  const tokens = await oidc.pollDeviceAuthorizationGrant(device, started);
  t.truthy(tokens.id_token);
  // A user code is a credential: the store finds device codes by its digest, never by the code itself.
  const stored = await server.withServices((_services, store) => store.oidc.findByUserCode('DeviceCode', started.user_code.replace('-', '')));
  t.is(stored, undefined);
});

test('a person who denies the device leaves it with access_denied', async (t) => {
  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
  const agent = new UserAgent();
  const form = await agent.request(started.verification_uri_complete!);
  const confirmation = await submit(agent, form, '/device', {}, 'http://never/');
  const denied = await submit(agent, confirmation, '/device', { abort: 'yes' }, 'http://never/');
  t.true(denied.body.includes('Access denied'));
  const error = await oidc.pollDeviceAuthorizationGrant(device, started).catch((caught: unknown) => caught);
  t.is((error as { error?: string }).error, 'access_denied');
});

test('a device polling faster than its interval is told slow_down', async (t) => {
  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
  const clientId = device.clientMetadata().client_id;
  const [first, second] = [await pollOnce(server, clientId, started.device_code), await pollOnce(server, clientId, started.device_code)];
  t.is(first.body.error, 'authorization_pending');
  t.is(second.status, 400);
  t.is(second.body.error, 'slow_down');
});

test('an expired device code is expired_token at the device and a readable error on the page', async (t) => {
  const started = await oidc.initiateDeviceAuthorization(strictDevice, { scope: 'openid' });
  const clientId = strictDevice.clientMetadata().client_id;
  const answer = await eventually(async () => {
    const polled = await pollOnce(strict, clientId, started.device_code);
    return polled.body.error === 'expired_token' ? polled : undefined;
  }, { what: 'the device code to expire', intervalMs: 1100, timeoutMs: 20_000 });
  t.is(answer.status, 400);
  const agent = new UserAgent();
  const form = await agent.request(started.verification_uri_complete!);
  const page = await submit(agent, form, '/device', {}, 'http://never/');
  t.is(page.status, 400);
  t.true(page.body.includes('expired'));
});

test('guessing user codes from one address is answered 429 with a page once over the limit', async (t) => {
  const agent = new UserAgent({});
  const statuses: number[] = [];
  let last: Page | undefined;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const form = await agent.request(`${guarded.issuer}/device`);
    last = await submit(agent, form, '/device', { user_code: `BBBB-BBB${'BCDF'[attempt]}` }, 'http://never/');
    statuses.push(last.status);
  }
  t.deepEqual(statuses, [400, 400, 400, 429]);
  t.regex(last!.headers.get('content-type') ?? '', /text\/html/);
  t.regex(last!.body, /Too many attempts/);
  t.truthy(last!.headers.get('retry-after'));
});

test('clients create --grant device_code registers a public device client, and refuses options a device cannot use', async (t) => {
  const created = await runCliJson<{ client_id: string; client_secret?: string }>(server.cliEnv, ['clients', 'create', '--name', 'Printer', '--grant', 'device_code', '--public', '--json']);
  t.is(created.client_secret, undefined, 'a public device has no secret');
  const metadata = await server.withServices(({ clients }) => clients.findMetadata(created.client_id));
  t.deepEqual(metadata?.grant_types, ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token']);
  t.is(metadata?.token_endpoint_auth_method, 'none');
  t.deepEqual(metadata?.redirect_uris, []);

  const confidential = await runCliJson<{ client_secret?: string }>(server.cliEnv, ['clients', 'create', '--name', 'Kiosk', '--grant', 'device_code', '--json']);
  t.truthy(confidential.client_secret, 'without --public a device client gets a secret');

  for (const misplaced of [['--redirect-uri', 'http://localhost:9/cb'], ['--require-par'], ['--resource', 'https://api.example.com']]) {
    const refused = await runCli(server.cliEnv, ['clients', 'create', '--name', 'x', '--grant', 'device_code', ...misplaced]);
    t.is(refused.code, 2, misplaced.join(' '));
    t.regex(singleErrorLine(refused), new RegExp(`^tessera: ${misplaced[0]} is not for devices`));
  }
});
