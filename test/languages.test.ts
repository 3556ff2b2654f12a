/**
 * Pages and mails in the person's language, over HTTP against a real server: `ui_locales`, then the
 * language picked with the switcher (a cookie), then Accept-Language, then DEFAULT_LOCALE.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { loadConfig } from '../src/config.ts';
import { runCliJson } from './helpers/cli.ts';
import { startMailCatcher, type MailCatcher } from './helpers/mail-catcher.ts';
import { authorizationRequest, discover, newPerson, RP_CALLBACK, staticClient, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent, type Page } from './helpers/user-agent.ts';

let server: TestServer;
let mail: MailCatcher;
let config: oidc.Configuration;

test.before(async () => {
  mail = await startMailCatcher();
  server = await startTestServer({ clients: [staticClient()], env: { SMTP_URL: mail.url, DEFAULT_LOCALE: 'fr' } });
  config = await discover(server.issuer);
});

test.after.always(async () => {
  await server?.close();
  await mail?.close();
  if (server) removeDir(server.dataDir);
});

function htmlLang(page: Page): string | undefined {
  return /<html lang="([^"]+)"/.exec(page.body)?.[1];
}

async function signInPage(agent: UserAgent, parameters: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<Page> {
  const request = await authorizationRequest(config, parameters);
  let page = await agent.request(request.url.href, { headers });
  for (let hops = 0; hops < 5 && page.status >= 300 && page.status < 400; hops += 1) {
    page = await agent.request(new URL(page.headers.get('location')!, page.url).href, { headers });
  }
  return page;
}

test('discovery lists the supported languages as ui_locales_supported', async (t) => {
  const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  t.deepEqual(metadata.ui_locales_supported, ['en', 'de', 'fr', 'es', 'pt-BR', 'ja']);
});

test('ui_locales chooses the sign-in page language, over Accept-Language', async (t) => {
  const german = await signInPage(new UserAgent(), { ui_locales: 'de' }, { 'accept-language': 'es' });
  t.is(german.status, 200);
  t.is(htmlLang(german), 'de');
  t.is(german.headers.get('content-language'), 'de');
  t.regex(german.body, /<h1>Anmelden<\/h1>/);
  t.regex(german.body, /<label for="password">Passwort<\/label>/);

  const japanese = await signInPage(new UserAgent(), { ui_locales: 'nl ja' });
  t.is(htmlLang(japanese), 'ja', 'the first supported of the list');
  t.regex(japanese.body, /<h1>サインイン<\/h1>/);
});

test('without ui_locales, Accept-Language is negotiated, then DEFAULT_LOCALE applies', async (t) => {
  t.is(htmlLang(await signInPage(new UserAgent(), {}, { 'accept-language': 'de-CH, en;q=0.5' })), 'de');
  t.is(htmlLang(await signInPage(new UserAgent(), {}, { 'accept-language': 'pt' })), 'pt-BR');
  const fallback = await signInPage(new UserAgent(), {}, { 'accept-language': 'nl, sv;q=0.5' });
  t.is(htmlLang(fallback), 'fr', 'DEFAULT_LOCALE=fr');
  t.regex(fallback.body, /<h1>Connexion<\/h1>/);
  const home = await new UserAgent().request(`${server.issuer}/`, { headers: { 'accept-language': 'es' } });
  t.is(htmlLang(home), 'es');
});

test('a language picked with the switcher is remembered, and beats ui_locales only within the same request', async (t) => {
  const agent = new UserAgent();
  const request = await authorizationRequest(config, { ui_locales: 'de' });
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  t.is(htmlLang(page), 'de');
  const switcher = readForm(page.body, '/language');
  t.truthy(switcher.fields.return?.startsWith('/interaction/'));
  const picked = await agent.request(new URL('/language', server.issuer).href, { form: { ...switcher.fields, lang: 'ja' }, headers: { origin: server.issuer } });
  t.is(picked.status, 303);
  t.is(picked.headers.get('location'), switcher.fields.return);
  page = await agent.follow(new URL(picked.headers.get('location')!, server.issuer).href, RP_CALLBACK);
  t.is(htmlLang(page), 'ja', 'the pick wins on this request\'s pages, though it asked for de');

  t.is(htmlLang(await agent.request(`${server.issuer}/`, { headers: { 'accept-language': 'es' } })), 'ja', 'the pick beats Accept-Language');
  t.is(htmlLang(await signInPage(agent, { ui_locales: 'de' })), 'de', 'a new request\'s ui_locales wins again');
});

test('the switcher refuses a language it does not have, a foreign origin, and an address off the site', async (t) => {
  const agent = new UserAgent();
  const url = new URL('/language', server.issuer).href;
  t.is((await agent.request(url, { form: { lang: 'xx', return: '/' }, headers: { origin: server.issuer, accept: 'text/html' } })).status, 400);
  t.is((await agent.request(url, { form: { lang: 'de', return: '/' }, headers: { origin: 'https://evil.example' } })).status, 403);
  const offSite = await agent.request(url, { form: { lang: 'de', return: '//evil.example/' }, headers: { origin: server.issuer } });
  t.is(offSite.status, 303);
  t.is(offSite.headers.get('location'), '/');
  t.is((await agent.request(url)).status, 404, 'GET changes nothing');
});

test('errors people see are in their language', async (t) => {
  const agent = new UserAgent();
  const page = await signInPage(agent, { ui_locales: 'de' });
  const wrong = await submit(agent, page, '/login', { email: 'nobody@example.com', password: 'not the password at all' });
  t.is(wrong.status, 401);
  t.is(htmlLang(wrong), 'de');
  t.regex(wrong.body, /E-Mail oder Passwort ist falsch\./);

  const missing = await new UserAgent().request(`${server.issuer}/no-such-page`, { headers: { 'accept-language': 'ja', accept: 'text/html' } });
  t.is(missing.status, 404);
  t.is(htmlLang(missing), 'ja');
  t.regex(missing.body, /このアドレスには何もありません。/);
});

test('the verification mail is in the language of the registration page', async (t) => {
  const agent = new UserAgent();
  const person = newPerson();
  const login = await signInPage(agent, { ui_locales: 'pt-BR' });
  const registration = await agent.request(new URL(readForm(login.body, '/login').action.replace(/\/login$/, '/register'), login.url).href);
  t.is(htmlLang(registration), 'pt-BR');
  await submit(agent, { ...registration, url: login.url }, '/register', {
    email: person.email, password: person.password, password_confirmation: person.password, name: '',
  });
  const message = await mail.waitFor((caught) => caught.to === person.email);
  t.is(message.subject, 'Confirme seu e-mail');
  t.regex(message.text, /O link vale uma vez, por 24 horas\./);
});

test('the device pages speak the browser\'s language, and the language picked on them, errors and all', async (t) => {
  const created = await runCliJson<{ client_id: string }>(server.cliEnv, ['clients', 'create', '--name', 'Kitchen Radio', '--grant', 'device_code', '--public']);
  await server.host.refresh();
  const device = await oidc.discovery(new URL(server.issuer), created.client_id, {}, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const person = newPerson();
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }).then(() => undefined));
  const started = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
  const agent = new UserAgent();
  const german = { 'accept-language': 'de-DE' };

  const form = await agent.request(started.verification_uri, { headers: german });
  t.is(htmlLang(form), 'de');
  t.regex(form.body, /<title>Gerät verbinden · Tessera<\/title>/);
  t.regex(form.body, /<label for="user_code">Code<\/label>/);
  const formFields = readForm(form.body, '/device');
  const wrong = await agent.request(new URL(formFields.action, form.url).href, { form: { ...formFields.fields, user_code: 'BCDF-GHJK' }, headers: german });
  t.is(wrong.status, 400);
  t.regex(wrong.body, /Dieser Code stimmt nicht\. Prüfen Sie den Code auf Ihrem Gerät/);

  // Picked with the switcher on the device page, Japanese holds for every page after it.
  const switcher = readForm(wrong.body, '/language');
  await agent.request(new URL('/language', server.issuer).href, { form: { ...switcher.fields, lang: 'ja' }, headers: { origin: server.issuer } });
  const again = await agent.request(started.verification_uri, { headers: german });
  t.is(htmlLang(again), 'ja');
  const confirmation = await submit(agent, again, '/device', { user_code: started.user_code }, 'http://never/');
  t.is(htmlLang(confirmation), 'ja');
  t.regex(confirmation.body, /<h1>Kitchen Radio を接続しますか？<\/h1>/);
  t.regex(confirmation.body, /<button type="submit" name="abort" value="yes" class="secondary">拒否する<\/button>/);
  let page = await submit(agent, confirmation, '/device', { confirm: 'yes' }, 'http://never/');
  page = await submit(agent, page, '/login', { email: person.email, password: person.password }, 'http://never/');
  if (page.body.includes('/consent"')) page = await submit(agent, page, '/consent', { decision: 'allow' }, 'http://never/');
  t.is(page.status, 200);
  t.is(htmlLang(page), 'ja');
  t.regex(page.body, /<h1>デバイスを接続しました<\/h1>/);
  t.regex(page.body, /Kitchen Radio はサインインしました。/);
});

test('DEFAULT_LOCALE must be a supported language, said in one line', (t) => {
  const error = t.throws(() => loadConfig({ DEFAULT_LOCALE: 'xx' }));
  t.regex(error.message, /^Configuration error: DEFAULT_LOCALE: must be one of en, de, fr, es, pt-BR, ja$/);
});
