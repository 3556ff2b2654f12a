/**
 * The account page's conveniences (issue #14 item 5): links to its sections, human names for what
 * apps may do, and "send the confirmation email again" for an address not yet confirmed (rate limited).
 */
import test from 'ava';

import { startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { staticClient, submit, type Person } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

const NOWHERE = 'never:';
let server: TestServer;
let mail: MailCatcher;
let counter = 0;

test.before(async () => {
  mail = await startMailCatcher();
  // Mails to one address: 2 an hour, so the third request is refused.
  server = await startTestServer({ clients: [staticClient()], env: { SMTP_URL: mail.url, RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT: '2/3600' } });
});
test.after.always(async () => {
  await server?.close();
  await mail?.close();
});

async function signedIn(): Promise<{ agent: UserAgent; page: Page; person: Person }> {
  const person = { email: `confirm.${(counter += 1)}.${Date.now()}@example.com`, password: 'an unusual passphrase for confirming' };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  const agent = new UserAgent();
  const login = await agent.follow(`${server.issuer}/account`, NOWHERE);
  const page = await submit(agent, login, '/login', { email: person.email, password: person.password }, NOWHERE);
  return { agent, page, person };
}

test('the account page links to each of its sections from a labelled navigation', async (t) => {
  const { page } = await signedIn();
  const nav = /<nav class="section-nav" aria-label="Sections of this page">([\s\S]*?)<\/nav>/.exec(page.body)?.[1] ?? '';
  const targets = [...nav.matchAll(/href="#([\w-]+)"/g)].map((match) => match[1]!);
  t.deepEqual(targets, ['profile', 'password', 'security', 'identities', 'sessions', 'apps']);
  for (const id of targets) t.regex(page.body, new RegExp(`<section id="${id}"`));
});

test('an unconfirmed address gets "send the confirmation email again": a new link arrives, and the limit answers 429 on the page', async (t) => {
  const { agent, page, person } = await signedIn();
  const resend = async (from: Page) => {
    const form = readForm(from.body, 'action="/account/email/confirm-again"');
    return agent.request(new URL(form.action, from.url).href, { form: form.fields });
  };
  const sent = await resend(page);
  t.is(sent.status, 303);
  t.regex(sent.headers.get('location') ?? '', /done=verification-sent/);
  const message = await mail.waitFor((caught) => caught.to === person.email && caught.subject === 'Confirm your email address');
  t.regex(message.text, /\/email\/verify\?token=/);
  const after = await agent.request(`${server.issuer}/account?done=verification-sent`);
  t.true(after.body.includes('A new confirmation link is on its way'));

  t.is((await resend(after)).status, 303);
  const limited = await resend(after);
  t.is(limited.status, 429);
  t.truthy(limited.headers.get('retry-after'));
  t.regex(limited.body, /<section id="profile"[\s\S]*Too many attempts/);
});

test('a destructive action asks first on a page of its own, and only its "Yes" does it; "No" goes back', async (t) => {
  const { agent, page } = await signedIn();
  const form = readForm(page.body, 'action="/account/sessions/end"');
  const asked = await agent.request(new URL(form.action, page.url).href, { form: form.fields });
  t.is(asked.status, 200);
  t.true(asked.body.includes('<h1>Are you sure?</h1>'));
  t.true(asked.body.includes('Sign that browser out?'));
  t.true(asked.body.includes('<a class="button secondary" href="/account#sessions">No, go back to my account</a>'));
  // Nothing happened yet: the account page still opens in this browser.
  t.is((await agent.request(`${server.issuer}/account`)).status, 200);
  const confirm = readForm(asked.body, 'action="/account/sessions/end"');
  t.is(confirm.fields.session, form.fields.session, 'the same fields go along');
  t.false('confirm' in confirm.fields, 'only the Yes button carries confirm=yes');
  t.regex(asked.body, /<button type="submit" name="confirm" value="yes" class="primary">Yes, go ahead<\/button>/);
  const done = await agent.request(new URL(confirm.action, asked.url).href, { form: { ...confirm.fields, confirm: 'yes' } });
  t.is(done.status, 303);
  t.not((await agent.request(`${server.issuer}/account`)).status, 200, 'this browser is signed out');
});
