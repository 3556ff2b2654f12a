/**
 * Cookies and CSRF (issue #10): a CSRF cookie and token taken from one session do not pass in
 * another, and over TLS every cookie carries the prefix that makes the browser enforce it.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import test from 'ava';
import * as oidc from 'openid-client';

import { createCertificateAuthority, issueCertificate } from '../src/domain/pki.ts';
import { openLoginForm } from './helpers/login-form.ts';
import { authorize, authorizationRequest, newPerson, staticClient } from './helpers/relying-party.ts';
import { makeTempDir, removeDir, startTestServer } from './helpers/server.ts';
import { request } from './helpers/tls-client.ts';
import { UserAgent } from './helpers/user-agent.ts';

test('a CSRF cookie and token planted from another session are refused', async (t) => {
  const server = await startTestServer({ clients: [staticClient()] });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const attacker = await openLoginForm(server);
  const victim = await openLoginForm(server);
  // What a sibling subdomain can do on plain http: overwrite the victim's CSRF cookie with the
  // attacker's own (validly signed) one, and make the victim post the attacker's matching token.
  for (const name of ['tessera.csrf', 'tessera.csrf.sig']) victim.agent.plantCookie(name, attacker.agent.cookie(name)!);
  const planted = await victim.agent.request(victim.action, { form: { ...victim.fields, _csrf: attacker.fields._csrf!, email: 'a@example.com', password: 'x'.repeat(12) } });
  t.is(planted.status, 403);
  t.regex(planted.body, /did not come from this site/);

  const own = await openLoginForm(server);
  const genuine = await own.agent.request(own.action, { form: { ...own.fields, email: 'nobody@example.com', password: 'x'.repeat(12) } });
  t.not(genuine.status, 403, 'the session\'s own token still passes');
});

test('over TLS the cookies of Tessera and oidc-provider carry __Host-, or __Secure- where their path is narrower', async (t) => {
  const dir = makeTempDir('tessera-cookies-');
  const ca = await createCertificateAuthority({ subject: 'CN=Cookie Test CA' });
  const serverCert = await issueCertificate(ca, { subject: 'CN=localhost', sans: { dns: ['localhost'], ip: ['127.0.0.1'] }, usage: 'server' });
  writeFileSync(path.join(dir, 'server.pem'), serverCert.cert);
  writeFileSync(path.join(dir, 'server-key.pem'), serverCert.key);
  const client = staticClient();
  const server = await startTestServer({ clients: [client], env: { TLS_CERT: path.join(dir, 'server.pem'), TLS_KEY: path.join(dir, 'server-key.pem') } });
  t.teardown(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(dir);
  });
  t.true(server.issuer.startsWith('https://'));
  const metadata = (await request(`${server.issuer}/.well-known/openid-configuration`, { ca: ca.cert })).json<oidc.ServerMetadata>();
  const config = new oidc.Configuration(metadata, String(client.client_id), {}, oidc.ClientSecretBasic(String(client.client_secret)));
  const agent = new UserAgent({ ca: ca.cert });
  await authorize(agent, await authorizationRequest(config, { scope: 'openid email' }), newPerson(), { register: true });
  const account = await agent.follow(`${server.issuer}/account`, 'https://never.example.com/');
  t.is(account.status, 200, account.body.slice(0, 500));

  const names = new Set<string>();
  for (const line of agent.setCookieLines) {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const name = pair!.slice(0, pair!.indexOf('='));
    names.add(name);
    const lower = attributes.map((attribute) => attribute.toLowerCase());
    t.true(lower.includes('secure'), `${name} is Secure`);
    t.false(lower.some((attribute) => attribute.startsWith('domain=')), `${name} has no Domain`);
    if (name.startsWith('__Host-')) t.true(lower.includes('path=/'), `${name} has Path=/`);
    else t.true(name.startsWith('__Secure-'), `${name} is prefixed`);
  }
  for (const expected of ['__Host-tessera.csrf', '__Host-session', '__Secure-interaction', '__Secure-interaction_resume', '__Host-tessera.account.signin', '__Host-tessera.account']) {
    t.true(names.has(expected), `${expected} was set (saw ${[...names].join(', ')})`);
  }
});
