/**
 * The admin console (/admin) in a real browser: Chromium (playwright-core) signs in through
 * Tessera's own pages, sets up an authenticator app when the console asks for a second factor (codes
 * from otpauth), and does an operator's tasks through the pages. axe-core checks every console page;
 * the audit trail (read through the admin API's own store, on a second connection) names the operator
 * for every action. Chromium is required: without it these tests fail, they never skip.
 */
import { createRequire } from 'node:module';

import test, { type ExecutionContext } from 'ava';
import * as OTPAuth from 'otpauth';
import { chromium, type Browser, type Page } from 'playwright-core';

import type { SecurityEventType } from '../src/domain/events.ts';
import { startPausableEmulator } from './helpers/mongo-lane.ts';
import { CHROMIUM_ARGS, findChromium } from './helpers/browser.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const AXE_SOURCE = createRequire(import.meta.url)('axe-core').source as string;
const PASSWORD = 'unusual console passphrase for the staff';

let server: TestServer;
let browser: Browser | undefined;

test.before(async () => {
  server = await startTestServer({ env: { LOCKOUT_THRESHOLD: '3' } });
  await server.withServices(async ({ accounts, roles }) => {
    const admin = await accounts.register({ email: 'operator@example.org', password: PASSWORD, name: 'Olive Operator' });
    await roles.add(admin.email, 'admin');
    await accounts.register({ email: 'plain@example.org', password: PASSWORD });
    await accounts.register({ email: 'lockme.one@example.org', password: PASSWORD, name: 'Lock Me' });
    await accounts.register({ email: 'lockme.two@example.org', password: PASSWORD });
    for (let attempt = 0; attempt < 3; attempt++) await accounts.authenticate('lockme.one@example.org', 'wrong password').catch(() => undefined);
  });
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
});

test.after.always(async () => {
  await browser?.close();
  await server?.close();
  if (server) removeDir(server.dataDir);
});

function requireBrowser(t: ExecutionContext): Browser {
  if (!browser) throw new Error('Chromium was not found (looked for CHROMIUM_PATH, /usr/bin/chromium and chromium on PATH). Install it, e.g. `apt-get install -y chromium`.');
  t.timeout(120_000);
  return browser;
}

/** Script errors and CSP violations (reported on the console) fail the test. */
function watch(page: Page, problems: string[]): void {
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

/** axe-core's violations on the page as it is now, by rule and element, for a readable failure. */
async function accessibilityViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol: the pages' strict CSP (rightly) refuses an injected <script>.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe;
    const result = await axe.run();
    return result.violations.map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`);
  });
  return violations;
}

async function checkAccessible(t: ExecutionContext, page: Page, what: string): Promise<void> {
  t.deepEqual(await accessibilityViolations(page), [], `axe finds nothing on ${what}`);
}

/** Password, then the console's demand for a second factor: an authenticator app is set up. Returns its secret. */
async function signInAndEnrol(page: Page, email: string, at: TestServer = server): Promise<OTPAuth.Secret> {
  await page.goto(`${at.url}/admin`);
  await page.waitForURL(`${at.url}/interaction/**`);
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL('**/enrol');
  await page.getByRole('link', { name: 'Set up an authenticator app' }).click();
  await page.waitForURL('**/enrol/totp');
  const secret = OTPAuth.Secret.fromBase32((await page.locator('#totp-secret').textContent())!.replace(/\s/g, ''));
  await page.locator('#code').fill(OTPAuth.TOTP.generate({ secret }));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForURL('**/enrol/recovery-codes');
  await page.getByRole('button', { name: 'I have saved them, continue' }).click();
  return secret;
}

async function auditOf(sub: string | undefined, type: SecurityEventType) {
  return server.withServices(async ({ audit }) => (await audit.query({ limit: 100, ...(sub && { sub }), type })).events);
}

test('a person without the admin role signs in with a second factor and is refused by the console', async (t) => {
  const chrome = requireBrowser(t);
  const context = await chrome.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  watch(page, problems);

  await signInAndEnrol(page, 'plain@example.org');
  await page.waitForURL('**/admin/callback**');
  t.is((await page.locator('h1').textContent())?.trim(), 'No access to the admin console');
  t.regex((await page.locator('main').textContent()) ?? '', /does not hold the admin role/);
  await checkAccessible(t, page, 'the refusal page');
  const response = await page.goto(`${server.url}/admin/people`);
  // Still refused: a fresh sign-in (silent, the session has its second factor) gets a token without the admin scope.
  t.is(response?.status(), 403);
  t.deepEqual(problems, []);
});

test('an admin signs in with a second factor and runs Tessera from the console, every action in the audit trail', async (t) => {
  const chrome = requireBrowser(t);
  const context = await chrome.newContext({ viewport: { width: 390, height: 844 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  watch(page, problems);
  const operatorSub = await server.withServices(async ({ accounts }) => (await accounts.findByEmail('operator@example.org'))!.sub);

  await signInAndEnrol(page, 'operator@example.org');
  await page.waitForURL(`${server.url}/admin`);
  t.is((await page.locator('h1').textContent())?.trim(), 'Overview');
  t.true(await page.locator('svg.chart').isVisible());
  t.true(await page.getByRole('link', { name: 'lockme.one@example.org' }).isVisible(), 'the locked account is listed');
  t.regex((await page.locator('.stats').textContent()) ?? '', /\b4\s+accounts\b[\s\S]*\b1\s+locked accounts/, 'counted by the store');
  await checkAccessible(t, page, 'the overview');

  // People: search by email prefix, open one, disable and enable, give and take a role.
  await page.getByRole('link', { name: 'People' }).click();
  await page.locator('#q').fill('lockme');
  await page.getByRole('button', { name: 'Search' }).click();
  t.deepEqual((await page.locator('tbody tr td:first-child').allTextContents()).map((text) => text.trim()).sort(), ['lockme.one@example.org', 'lockme.two@example.org']);
  await checkAccessible(t, page, 'people');
  await page.getByRole('link', { name: 'lockme.one@example.org' }).click();
  await page.waitForURL('**/admin/people/**');
  const personUrl = page.url();
  await checkAccessible(t, page, 'a person');
  await page.getByRole('button', { name: 'Unlock' }).click();
  await page.getByText('The lockout is lifted').waitFor();
  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByText('The account is disabled').waitFor();
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByText('The account is enabled again').waitFor();
  await page.locator('#role').fill('support');
  await page.getByRole('button', { name: 'Give role' }).click();
  await page.getByText('The role is given').waitFor();
  await page.getByRole('button', { name: 'Take away support' }).click();
  await page.getByText('The role is taken away').waitFor();
  // A bad role name: the API's own schema refuses it, shown beside the field, 400 (no 500).
  await page.locator('#role').fill('not a role!');
  const [refusal] = await Promise.all([page.waitForResponse((response) => response.request().method() === 'POST'), page.getByRole('button', { name: 'Give role' }).click()]);
  t.is(refusal.status(), 400);
  t.true(await page.locator('#role[aria-invalid="true"]').isVisible());
  // A destructive action without its box ticked does nothing (the browser refuses the form; the server too).
  t.is(await page.locator('#confirm-end-sessions').count(), 0, 'nobody signed in there: no sessions to end');

  // Create a person; then a duplicate is refused beside the email field.
  await page.getByRole('link', { name: 'People' }).click();
  await page.locator('#email').fill('new.hire@example.org');
  await page.locator('#name').fill('New Hire');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByText('The person is created').waitFor();
  await page.getByRole('link', { name: 'People' }).click();
  await page.locator('#email').fill('new.hire@example.org');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#email-error').waitFor();
  t.regex((await page.locator('#email-error').textContent()) ?? '', /Already registered/);

  // Apps: register one, its secret is shown once.
  await page.getByRole('link', { name: 'Apps', exact: true }).click();
  await checkAccessible(t, page, 'apps');
  await page.locator('#name').fill('Billing');
  await page.locator('#redirect_uris').fill('https://billing.example.com/callback');
  await page.getByRole('button', { name: 'Register app' }).click();
  await page.locator('#client-secret').waitFor();
  t.true(((await page.locator('#client-secret').textContent()) ?? '').length >= 32);
  await checkAccessible(t, page, 'an app');
  const clientId = (await page.locator('#client-id').textContent())!.trim();
  await page.reload();
  t.is(await page.locator('#client-secret').count(), 0, 'the secret is shown once');
  const appUrl = page.url().replace(/\?.*$/, '');
  // Its redirect URIs edited: a plain-http one is refused beside the field (the API's rule, 400), then a good one saved.
  await page.locator('#redirect_uris').fill('http://billing.example.com/callback');
  const [editRefusal] = await Promise.all([page.waitForResponse((response) => response.request().method() === 'POST'), page.getByRole('button', { name: 'Save changes' }).click()]);
  t.is(editRefusal.status(), 400);
  t.regex((await page.locator('#redirect_uris-error').textContent()) ?? '', /https/);
  t.is(await page.locator('#redirect_uris').inputValue(), 'http://billing.example.com/callback', 'what was typed stays');
  await checkAccessible(t, page, 'an app with a refused edit');
  await page.locator('#redirect_uris').fill('https://billing.example.com/callback\nhttps://billing.example.com/other');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('The app is changed').waitFor();
  t.true(await page.locator('td code', { hasText: 'https://billing.example.com/other' }).isVisible());
  // Its secret rotated, confirmed: the new one shown once.
  await page.locator('#confirm-rotate-secret').check();
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  await page.getByText('The app has a new secret').waitFor();
  t.true(((await page.locator('#client-secret').textContent()) ?? '').length >= 32);
  // Delete, confirmed; then the stale page's delete says the app is gone.
  await page.locator('#confirm-delete').check();
  await page.getByRole('button', { name: 'Delete app' }).click();
  await page.getByText('The app is deleted').waitFor();
  const stale = await context.request.get(appUrl);
  t.is(stale.status(), 404);

  // A resource server registered: its introspection client's secret is shown once; then a machine
  // client for it (made by the CLI's service) gets a TLS subject added and the old one removed.
  await page.getByRole('link', { name: 'Apps', exact: true }).click();
  await page.locator('#audience').fill('https://orders.example.com');
  await page.locator('#resource_name').fill('Orders');
  await page.locator('#scopes').fill('orders:read orders:write');
  await page.getByRole('button', { name: 'Register resource server' }).click();
  await page.getByText('The resource server is created').waitFor();
  t.true(((await page.locator('#client-secret').textContent()) ?? '').length >= 32);
  const machineId = await server.withServices(async ({ clients }) => (await clients.createMachineClient({
    name: 'Orders sync', auth: 'tls_client_auth', tlsSubjects: [{ type: 'subject_dn', value: 'CN=sync,O=Test' }], resources: { 'https://orders.example.com': ['orders:read'] },
  })).client_id);
  await page.goto(`${server.url}/admin/apps/${machineId}`);
  await page.locator('#type').selectOption('san_dns');
  await page.locator('#value').fill('sync.internal');
  await page.getByRole('button', { name: 'Add subject' }).click();
  await page.getByText('The TLS subject is registered').waitFor();
  await checkAccessible(t, page, 'a machine client');
  await page.getByRole('button', { name: 'Remove subject_dn CN=sync,O=Test' }).click();
  await page.getByText('The TLS subject is removed').waitFor();
  t.deepEqual((await page.locator('#subjects-title + ul li').allTextContents()).map((text) => text.trim()), ['san_dns: sync.internal']);
  await page.getByRole('link', { name: 'Apps', exact: true }).click();
  t.true(await page.locator('td', { hasText: 'Orders sync' }).isVisible());
  await page.locator('#confirm-resource-https___orders_example_com').check();
  await page.getByRole('button', { name: 'Delete https://orders.example.com' }).click();
  await page.getByText('The resource server is deleted').waitFor();

  // Upstream providers: one added (its redirect URI to register is shown), then removed, confirmed.
  await page.getByRole('link', { name: 'Upstreams' }).click();
  await page.locator('#id').fill('gh');
  await page.locator('#preset').selectOption('github');
  await page.locator('#client_id').fill('Iv1.console');
  await page.locator('#client_secret').fill('a github client secret');
  await page.getByRole('button', { name: 'Add provider' }).click();
  await page.getByText('The upstream provider is added').waitFor();
  t.true(await page.locator('td code', { hasText: '/gh' }).first().isVisible());
  await checkAccessible(t, page, 'upstream providers');
  await page.locator('#confirm-upstream-gh').check();
  await page.getByRole('button', { name: /^Remove / }).click();
  await page.getByText('The upstream provider is removed').waitFor();

  // Keys: rotate, confirmed.
  await page.getByRole('link', { name: 'Keys' }).click();
  await checkAccessible(t, page, 'keys');
  await page.locator('#confirm-rotate').check();
  await page.getByRole('button', { name: 'Rotate keys' }).click();
  await page.getByText('New signing keys are in use').waitFor();
  t.true((await page.locator('tbody tr', { hasText: 'retired' }).count()) >= 1);

  // Audit trail, filtered by person: the disable shows up there.
  await page.goto(personUrl);
  await page.getByRole('link', { name: 'Their audit trail' }).click();
  await page.waitForURL('**/admin/audit?**');
  t.true(await page.locator('td', { hasText: 'account.disabled' }).first().isVisible());
  await checkAccessible(t, page, 'the audit trail');

  // A form posted after the console session ran out: a fresh sign-in (silent: the Tessera session
  // holds its second factor) and back to the page the form was on, with nothing done.
  await page.getByRole('link', { name: 'Keys' }).click();
  await context.clearCookies({ name: 'tessera.console' });
  await page.locator('#confirm-rotate').check();
  await page.getByRole('button', { name: 'Rotate keys' }).click();
  await page.waitForURL(`${server.url}/admin/keys`);
  t.is((await page.locator('h1').textContent())?.trim(), 'Keys');
  t.is(await page.getByText('New signing keys are in use').count(), 0);

  // Every write went through the admin API, audited as admin.action naming the operator.
  const actions = (await auditOf(undefined, 'admin.action')).filter((event) => event.details?.actor_sub === operatorSub).map((event) => event.details?.action);
  for (const action of ['unlockUser', 'updateUser', 'addRole', 'removeRole', 'createUser', 'createClient', 'updateClient', 'rotateClientSecret', 'deleteClient',
    'createResource', 'addTlsSubject', 'removeTlsSubject', 'deleteResource', 'createUpstream', 'deleteUpstream', 'rotateKeys']) {
    t.true(actions.includes(action), `${action} is in the audit trail, by the operator`);
  }
  t.truthy((await auditOf(undefined, 'admin.action')).find((event) => event.clientId === clientId && event.details?.action === 'deleteClient'));
  t.deepEqual(problems, []);
});

test('while the store answers nothing, a console page keeps its navigation and says so in a banner, 503 and never a 500', async (t) => {
  const chrome = requireBrowser(t);
  const lane = await startPausableEmulator();
  t.teardown(() => lane.stop());
  const mongoServer = await startTestServer({ env: { MONGODB_URI: lane.uri } });
  t.teardown(async () => {
    await mongoServer.close();
    removeDir(mongoServer.dataDir);
  });
  await mongoServer.withServices(async ({ accounts, roles }) => {
    await accounts.register({ email: 'operator@example.org', password: PASSWORD });
    await roles.add('operator@example.org', 'admin');
  });
  const context = await chrome.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  await signInAndEnrol(page, 'operator@example.org', mongoServer);
  await page.waitForURL(`${mongoServer.url}/admin`);

  await lane.pause();
  let resumed = false;
  t.teardown(() => {
    if (!resumed) lane.resume();
  });
  const response = await page.goto(`${mongoServer.url}/admin/people`);
  // Seen twice in full-suite runs only: a 200 here. Say what answered, for whoever sees it next.
  t.is(response?.status(), 503, `${response?.url()} answered "${(await page.locator('h1').first().textContent().catch(() => ''))?.trim()}" (${response?.headers()['x-request-id']})`);
  t.regex((await page.locator('#banner').textContent()) ?? '', /store is not answering/);
  t.true(await page.getByRole('navigation', { name: 'Admin console' }).isVisible());
  lane.resume();
  resumed = true;
  const again = await page.reload();
  t.is(again?.status(), 200);
  t.is(await page.locator('#banner').count(), 0);
});
