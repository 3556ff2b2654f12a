/**
 * Consent and sign-in conveniences (issue #14 item 5), through the pages as a browser without
 * JavaScript sees them: the consent page names the signed-in account with "Not you?" and the app's
 * domain, says the app's name once; the sign-in page offers passkey autofill and a show-password
 * control only as enhancements.
 */
import test from 'ava';
import * as oidc from 'openid-client';

import { authorizationRequest, discover, RP_CALLBACK, staticClient, submit, type Person } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

let server: TestServer;
let rp: oidc.Configuration;
let counter = 0;

test.before(async () => {
  server = await startTestServer({ clients: [staticClient({ client_name: 'Acme Notes' })] });
  rp = await discover(server.issuer);
});
test.after.always(async () => server?.close());

async function newAccount(): Promise<Person> {
  counter += 1;
  const person = { email: `switch${counter}.${Date.now()}@example.com`, password: `an unusual passphrase ${counter} for switching` };
  await server.withServices(({ accounts }) => accounts.register({ email: person.email, password: person.password }));
  return person;
}

function main(body: string): string {
  return /<main[^>]*>([\s\S]*)<\/main>/.exec(body)?.[1] ?? '';
}

test('the consent page names the signed-in account and the app\'s domain, says the app\'s name once, and "Not you?" signs in as someone else', async (t) => {
  const [ada, bob] = await Promise.all([newAccount(), newAccount()]);
  const agent = new UserAgent();
  const request = await authorizationRequest(rp, { login_hint: ada.email });
  const login = await agent.follow(request.url.href, RP_CALLBACK);
  const consentPage = await submit(agent, login, '/login', { email: ada.email, password: ada.password });
  const body = main(consentPage.body);
  t.regex(body, new RegExp(`Signed in as <strong class="account-email">${ada.email.replace(/\./g, '\\.')}</strong>`));
  t.regex(body, /<\/h1>\s*<p class="client-domain">[\s\S]*localhost:9<\/p>/);
  t.is(body.split('Acme Notes').length - 1, 1, 'the app name appears once');

  const notYou = /<a href="([^"]+)">Not you\? Use another account<\/a>/.exec(body)?.[1]?.replaceAll('&amp;', '&');
  t.truthy(notYou);
  const switched = new URL(notYou!, server.issuer);
  t.is(switched.searchParams.get('prompt'), 'login');
  t.is(switched.searchParams.get('login_hint'), null, 'the hint named the account being left');
  t.is(switched.searchParams.get('state'), request.state, 'the same authorization request');

  // The sign-in form again, though a session exists; signing in as Bob finishes the app's request for Bob.
  const again = await agent.follow(switched.href, RP_CALLBACK);
  t.regex(again.body, /action="[^"]*\/login"/);
  const signedInAsBob = await submit(agent, again, '/login', { email: bob.email, password: bob.password });
  // oidc-provider ends Ada's session first, with a form its own script posts (a browser without JavaScript presses Continue).
  t.true(signedInAsBob.body.includes('/session/end/confirm'));
  const bobConsent = await submit(agent, signedInAsBob, '/session/end/confirm', {});
  t.true(main(bobConsent.body).includes(bob.email), `${bobConsent.status} ${bobConsent.url}`);
  t.false(main(bobConsent.body).includes(ada.email));
  const callback = await submit(agent, bobConsent, '/consent', { decision: 'allow' });
  t.true(callback.url.startsWith(RP_CALLBACK), callback.body.slice(0, 500));
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback.url), {
    pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true,
  });
  t.is(tokens.claims()?.email, bob.email);
});

test('the sign-in page offers passkey autofill and a show-password control as enhancements of a plain form', async (t) => {
  const agent = new UserAgent();
  const request = await authorizationRequest(rp);
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  readForm(page.body, '/login');
  t.regex(page.body, /<input id="email"[^>]*autocomplete="username webauthn"/);
  t.regex(page.body, /data-passkey="authenticate"[^>]*data-autofill="true"/);
  // Without JavaScript the password field is a plain one: the toggle is only added by the script.
  t.regex(page.body, /<div class="password-field" data-show-password="Show password" data-hide-password="Hide password">\s*<input id="password"[^>]*type="password"/);
  t.false(page.body.includes('class="password-toggle"'));
  t.regex(page.body, /<script src="\/assets\/password-toggle\.js" defer><\/script>/);
  const script = await fetch(new URL('/assets/password-toggle.js', server.issuer));
  t.is(script.status, 200);
  t.regex(await script.text(), /aria-controls/);
});
