/**
 * Errors people can act on (issue #14 item 4): each form problem beside its field with aria, focus
 * on the first invalid field, a rate-limited sign-in that keeps the form and says when, and error
 * pages that say what happened and offer a way on, the OAuth code in small print.
 */
import test from 'ava';

import { translator } from '../src/i18n/catalogs.ts';
import { authorizationRequest, discover, RP_CALLBACK, staticClient } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

const CLIENT = staticClient({ client_uri: 'https://rp.example/' });
let server: TestServer;

test.before(async () => {
  server = await startTestServer({ clients: [CLIENT], env: { RATE_LIMIT_SIGNIN_PER_ACCOUNT: '2/300' } });
});
test.after.always(async () => server?.close());

async function loginForm(parameters: Record<string, string> = {}) {
  const agent = new UserAgent();
  const request = await authorizationRequest(await discover(server.issuer, CLIENT), parameters);
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  const form = readForm(page.body, '/login');
  const post = (fields: Record<string, string>) => agent.request(new URL(form.action, page.url).href, { form: { ...form.fields, ...fields } });
  return { page, post };
}

/** The <input> tag with this id. */
function input(page: Page, id: string): string {
  return new RegExp(`<input id="${id}"[^>]*>`).exec(page.body)?.[0] ?? '';
}

const en = translator('en').t;

test('an empty sign-in form says what is missing beside each field, with aria, and focuses the first', async (t) => {
  const { post } = await loginForm();
  const empty = await post({ email: '', password: '' });
  t.is(empty.status, 400);
  t.false(empty.body.includes('Invalid email or password'));
  t.regex(input(empty, 'email'), /aria-invalid="true" aria-describedby="email-error"/);
  t.regex(input(empty, 'email'), / autofocus/);
  t.regex(input(empty, 'password'), /aria-invalid="true" aria-describedby="password-error"/);
  t.notRegex(input(empty, 'password'), / autofocus/);
  t.regex(empty.body, new RegExp(`<p class="field-error" id="email-error">.*${en('login.enterEmail')}</p>`));
  t.regex(empty.body, new RegExp(`<p class="field-error" id="password-error">.*${en('login.enterPassword')}</p>`));
  t.false(empty.body.includes('role="alert" id="form-error"'), 'one message per problem: no summary repeating them');

  const noPassword = await post({ email: 'someone@example.com', password: '' });
  t.is(noPassword.status, 400);
  t.regex(input(noPassword, 'email'), /value="someone@example.com"/);
  t.notRegex(input(noPassword, 'email'), /aria-invalid|autofocus/);
  t.regex(input(noPassword, 'password'), /aria-invalid="true" aria-describedby="password-error" ?|autofocus/);
  t.regex(input(noPassword, 'password'), / autofocus/);
  t.false(noPassword.body.includes('id="email-error"'));
});

test('a rate-limited sign-in keeps the form and the email, and says when to try again in the person\'s language', async (t) => {
  const { post } = await loginForm({ ui_locales: 'de' });
  const email = 'limited@example.com';
  for (let attempt = 0; attempt < 2; attempt += 1) t.is((await post({ email, password: 'wrong password here' })).status, 401);
  const limited = await post({ email, password: 'wrong password here' });
  t.is(limited.status, 429);
  const retryAfter = Number(limited.headers.get('retry-after'));
  t.true(retryAfter > 0 && retryAfter <= 300);
  t.regex(limited.body, /<form method="post" action="\/interaction\/[^"]+\/login"/);
  t.regex(input(limited, 'email'), new RegExp(`value="${email}"`));
  const german = translator('de').t('messages.rateLimited', { wait: '' }).split('{{')[0]!.trim();
  t.true(limited.body.includes(german.slice(0, 20)), german);
  t.false(limited.body.includes('Too many attempts'));
  t.notRegex(input(limited, 'email'), /aria-invalid/, 'no field is wrong');
});

test('an unknown client gets a page that says so in plain words, offers a way on, and shows the code', async (t) => {
  const response = await fetch(new URL('/auth?client_id=nobody&response_type=code&scope=openid&redirect_uri=https://evil.example/cb', server.issuer));
  const body = await response.text();
  t.is(response.status, 400);
  t.true(body.includes(`<h1>${en('error.client.heading')}</h1>`));
  t.regex(body, /<p class="support">[^<]*<code>invalid_client<\/code>/);
  t.true(body.includes('<a href="/account">'));
  t.true(body.includes('<a href="/">'));
  t.false(body.includes('href="https://evil.example'), 'never a link to an address the request named');
});

test('a bad redirect URI offers the way back to the app at an address it registered, never the one asked for', async (t) => {
  const config = await discover(server.issuer, CLIENT);
  const request = await authorizationRequest(config, { redirect_uri: 'https://evil.example/cb' });
  const response = await fetch(request.url);
  const body = await response.text();
  t.is(response.status, 400);
  t.true(body.includes(`<h1>${en('error.redirect.heading')}</h1>`));
  t.true(body.includes(`<a href="https://rp.example/" rel="noopener noreferrer">${en('error.backTo', { client: 'Test RP' })}</a>`));
  t.false(body.includes('href="https://evil.example'));
  t.regex(body, /<code>invalid_redirect_uri<\/code>/);
});

test('an expired sign-in page and an unknown address say what happened and how to go on', async (t) => {
  const expired = await fetch(new URL('/interaction/gone-for-good', server.issuer), { headers: { accept: 'text/html' } });
  const expiredBody = await expired.text();
  t.true(expiredBody.includes(`<h1>${en('error.expired.heading')}</h1>`), expiredBody.slice(0, 2000));
  t.true(expiredBody.includes(en('error.startAgain')));
  t.regex(expiredBody, /<code>interaction_expired<\/code>/);

  const missing = await fetch(new URL('/no/such/page', server.issuer), { headers: { accept: 'text/html' } });
  const missingBody = await missing.text();
  t.is(missing.status, 404);
  t.true(missingBody.includes(`<h1>${en('error.notFound.heading')}</h1>`));
  t.true(missingBody.includes('<a href="/">'));
  t.regex(missingBody, /<code>not_found<\/code>/);
});
