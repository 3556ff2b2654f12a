/**
 * Client ID Metadata Documents (CLIENT_ID_METADATA_DOCUMENTS=on): a client whose client_id is the
 * https URL of its metadata, fetched by Tessera from a real TLS server on localhost (which needs
 * ALLOW_LOOPBACK_FETCHES: oidc-provider refuses loopback by default), signing a person in through
 * openid-client and the real pages; the consent page says it is not the operator's; the same
 * policy as for registered clients; host deny-lists and size limits; off by default.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

import test from 'ava';
import * as oidc from 'openid-client';

import { createCertificateAuthority, issueCertificate } from '../src/domain/pki.ts';
import { authorizationRequest, newPerson, RP_CALLBACK, submit } from './helpers/relying-party.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';
import { readForm, UserAgent } from './helpers/user-agent.ts';

let documents: Server;
let base: string;
const served = new Map<string, unknown>();

test.before(async () => {
  const ca = await createCertificateAuthority({ subject: 'CN=Test documents CA' });
  const leaf = await issueCertificate(ca, { subject: 'CN=localhost', sans: { dns: ['localhost'] }, usage: 'server' });
  // Tessera runs in this process: its outgoing fetches trust the test CA as a deployment trusts a public one.
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), ca.cert]);
  documents = createServer({ cert: leaf.cert, key: leaf.key }, (request, response) => {
    const body = served.get(request.url ?? '');
    if (body === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=60' }).end(typeof body === 'string' ? body : JSON.stringify(body));
  });
  await new Promise<void>((resolve) => documents.listen(0, 'localhost', () => resolve()));
  base = `https://localhost:${(documents.address() as AddressInfo).port}`;
});

test.after.always(() => new Promise<void>((resolve) => (documents ? documents.close(() => resolve()) : resolve())));

function publish(path: string, metadata: Record<string, unknown> | string): string {
  const clientId = `${base}${path}`;
  served.set(path, typeof metadata === 'string' ? metadata : { client_id: clientId, ...metadata });
  return clientId;
}

const AGENT = {
  client_name: 'Document agent',
  redirect_uris: [RP_CALLBACK],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

async function server(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string>): Promise<TestServer> {
  const started = await startTestServer({ env });
  t.teardown(async () => {
    await started.close();
    removeDir(started.dataDir);
  });
  return started;
}

async function openAuthorization(issuer: string, clientId: string) {
  const config = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const request = await authorizationRequest(config, { scope: 'openid profile' });
  const agent = new UserAgent();
  return { config, request, agent, page: await agent.follow(request.url.href, RP_CALLBACK) };
}

test('off by default: discovery does not offer metadata documents and a URL client_id is unknown', async (t) => {
  const tessera = await server(t, {});
  const discovery = await (await fetch(`${tessera.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  t.false('client_id_metadata_document_supported' in discovery);
  const { page } = await openAuthorization(tessera.issuer, publish('/off.json', AGENT)).catch(() => ({ page: { status: 400, body: '' } }));
  t.is(page.status, 400);
});

test('with CLIENT_ID_METADATA_DOCUMENTS=on a client named by its document signs a person in, and consent says it is not the operator\'s and where it sends them', async (t) => {
  const tessera = await server(t, { CLIENT_ID_METADATA_DOCUMENTS: 'on', ALLOW_LOOPBACK_FETCHES: 'true' });
  const discovery = await (await fetch(`${tessera.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  t.is(discovery.client_id_metadata_document_supported, true);

  const clientId = publish('/agent.json', AGENT);
  const { config, request, agent, page: login } = await openAuthorization(tessera.issuer, clientId);
  t.regex(login.body, /Document agent/, login.body.slice(0, 400));
  const person = newPerson();
  const registration = await agent.request(new URL(readForm(login.body, '/login').action.replace(/\/login$/, '/register'), login.url).href);
  let page = await submit(agent, { ...registration, url: login.url }, '/register', { email: person.email, password: person.password, password_confirmation: person.password, name: '' });
  t.regex(page.body, /registered itself by naming its metadata document: it is not an app the operator of this service registered/);
  t.regex(page.body, /sent to <strong class="redirect-host">localhost:9<\/strong>/);
  page = await submit(agent, page, '/consent', { decision: 'allow' });
  const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
  t.truthy(tokens.access_token);
  t.is(tokens.claims()?.aud, clientId);
});

test('a metadata document meets the registration policy, the host lists and the size limit', async (t) => {
  const tessera = await server(t, { CLIENT_ID_METADATA_DOCUMENTS: 'on', ALLOW_LOOPBACK_FETCHES: 'true', CLIENT_ID_METADATA_DOCUMENTS_MAX_BYTES: '1024' });
  t.is((await openAuthorization(tessera.issuer, publish('/fine.json', AGENT))).page.status, 200, 'a document within the rules opens the sign-in page');
  for (const [path, metadata] of [
    ['/machine.json', { ...AGENT, grant_types: ['authorization_code', 'client_credentials'] }],
    ['/cleartext.json', { ...AGENT, redirect_uris: ['http://agent.example.com/callback'] }],
    ['/operator.json', { ...AGENT, tessera_first_party: true }],
    ['/large.json', { ...AGENT, client_name: 'x'.repeat(2000) }],
  ] as const) {
    const { page } = await openAuthorization(tessera.issuer, publish(path, metadata));
    t.is(page.status, 400, `${path}: ${page.body.slice(0, 300)}`);
  }
  const denied = await server(t, { CLIENT_ID_METADATA_DOCUMENTS: 'on', ALLOW_LOOPBACK_FETCHES: 'true', CLIENT_ID_METADATA_DOCUMENTS_DENIED_HOSTS: 'localhost' });
  t.is((await openAuthorization(denied.issuer, publish('/denied.json', AGENT))).page.status, 400);
  const allowedElsewhere = await server(t, { CLIENT_ID_METADATA_DOCUMENTS: 'on', ALLOW_LOOPBACK_FETCHES: 'true', CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS: '*.example.com' });
  t.is((await openAuthorization(allowedElsewhere.issuer, publish('/not-allowed.json', AGENT))).page.status, 400);
  // Without ALLOW_LOOPBACK_FETCHES oidc-provider's SSRF guard refuses a document on loopback.
  const guarded = await server(t, { CLIENT_ID_METADATA_DOCUMENTS: 'on' });
  t.is((await openAuthorization(guarded.issuer, publish('/guarded.json', AGENT))).page.status, 400);
});
