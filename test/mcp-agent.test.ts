/**
 * The AI-agent path end to end, with the MCP SDK's own client and server (no hand-made requests):
 * the example MCP server (examples/mcp-server) answers 401 with its RFC 9728 metadata; the SDK's
 * client finds Tessera there, registers itself (DYNAMIC_CLIENT_REGISTRATION=open), sends the
 * person to sign in and consent in Chromium with PKCE and the resource indicator, gets a JWT access
 * token whose `aud` is the MCP server, and calls a tool with it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import test from 'ava';
import * as jose from 'jose';
import { chromium, type Browser } from 'playwright-core';

import { startMcpServer, type RunningMcpServer } from '../examples/mcp-server/server.ts';
import { CHROMIUM_ARGS, findChromium } from './helpers/browser.ts';
import { runCli } from './helpers/cli.ts';
import { removeDir, startTestServer, type TestServer } from './helpers/server.ts';

const PASSWORD = 'correct horse battery staple';

/** Where the browser lands after consent: a real HTTP receiver, as an agent on the person's machine runs. */
async function startCallbackReceiver() {
  let resolveCode: (code: string) => void;
  const code = new Promise<string>((resolve) => {
    resolveCode = resolve;
  });
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const received = url.searchParams.get('code');
    if (received) resolveCode(received);
    response.writeHead(200, { 'Content-Type': 'text/plain' }).end(received ? 'Signed in; you can close this window.' : `no code: ${url.search}`);
  });
  await new Promise<void>((resolve) => server.listen(0, 'localhost', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://localhost:${port}/callback`, code, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The smallest OAuthClientProvider: everything in memory, the authorization URL handed to the test. */
class InMemoryProvider implements OAuthClientProvider {
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier = '';
  authorizationUrl: URL | undefined;
  readonly #redirect: string;

  constructor(redirect: string) {
    this.#redirect = redirect;
  }

  get redirectUrl() {
    return this.#redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Example agent',
      redirect_uris: [this.#redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() {
    return this.#client;
  }

  saveClientInformation(information: OAuthClientInformationMixed) {
    this.#client = information;
  }

  tokens() {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens) {
    this.#tokens = tokens;
  }

  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }

  saveCodeVerifier(verifier: string) {
    this.#verifier = verifier;
  }

  codeVerifier() {
    return this.#verifier;
  }
}

let browser: Browser | undefined;
let tessera: TestServer;
let mcp: RunningMcpServer;

test.before(async () => {
  const executablePath = findChromium();
  if (executablePath) browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  tessera = await startTestServer({ env: { DYNAMIC_CLIENT_REGISTRATION: 'open' } });
  mcp = await startMcpServer({ issuer: tessera.issuer, port: 0 });
  const created = await runCli(tessera.cliEnv, ['resources', 'create', '--audience', mcp.resource, '--scope', 'mcp:tools', '--name', 'Example MCP server']);
  if (created.code !== 0) throw new Error(created.stderr);
  const person = await runCli(tessera.cliEnv, ['users', 'create', '--email', 'agent.owner@example.com', '--password-stdin'], `${PASSWORD}\n`);
  if (person.code !== 0) throw new Error(person.stderr);
});

test.after.always(async () => {
  await browser?.close();
  await mcp?.close();
  await tessera?.close();
  if (tessera) removeDir(tessera.dataDir);
});

test('the MCP SDK client registers itself, signs the person in through a browser with PKCE, and calls a tool with a token for exactly the MCP server', async (t) => {
  if (!browser) throw new Error('Chromium was not found (looked for CHROMIUM_PATH, /usr/bin/chromium and chromium on PATH).');
  const callback = await startCallbackReceiver();
  t.teardown(() => callback.close());

  // The server's own first answer: 401 pointing at its metadata, which points at Tessera.
  const bare = await fetch(mcp.resource, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.is(bare.status, 401);
  t.regex(bare.headers.get('www-authenticate') ?? '', /^Bearer resource_metadata="http:\/\/localhost:\d+\/\.well-known\/oauth-protected-resource\/mcp"/);

  const provider = new InMemoryProvider(callback.url);
  const first = new StreamableHTTPClientTransport(new URL(mcp.resource), { authProvider: provider });
  await t.throwsAsync(new Client({ name: 'example-agent', version: '1.0.0' }).connect(first), { instanceOf: UnauthorizedError });
  const registered = provider.clientInformation();
  t.truthy(registered?.client_id, 'registered itself with Tessera');
  const authorizationUrl = provider.authorizationUrl!;
  t.is(authorizationUrl.origin, new URL(tessera.issuer).origin);
  t.is(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
  t.is(authorizationUrl.searchParams.get('resource'), mcp.resource);

  const context = await browser.newContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  await page.goto(authorizationUrl.href);
  await page.locator('#email').fill('agent.owner@example.com');
  await page.locator('#password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForSelector('text=wants to access your account');
  const consent = await page.locator('main').innerText();
  t.regex(consent, /not an app the operator of this service registered/);
  t.regex(consent, new RegExp(`sent to ${new URL(callback.url).host.replace('.', '\\.')}`));
  t.regex(consent, /Use Example MCP server/);
  await page.getByRole('button', { name: 'Allow' }).click();
  const code = await callback.code;

  await first.finishAuth(code);
  const tokens = provider.tokens()!;
  const claims = jose.decodeJwt(tokens.access_token);
  t.is(claims.aud, mcp.resource);
  t.is(claims.client_id, registered!.client_id);
  t.is(claims.scope, 'mcp:tools');

  const client = new Client({ name: 'example-agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcp.resource), { authProvider: provider }));
  t.teardown(() => client.close());
  const tools = await client.listTools();
  t.deepEqual(tools.tools.map((tool) => tool.name).sort(), ['add', 'whoami']);
  const sum = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } });
  t.deepEqual(sum.content, [{ type: 'text', text: '42' }]);
  const whoami = JSON.parse(((await client.callTool({ name: 'whoami', arguments: {} })).content as Array<{ text: string }>)[0]!.text) as { sub: string; client_id: string };
  t.is(whoami.client_id, registered!.client_id);
  t.truthy(whoami.sub);
});

test('the MCP server refuses a genuine Tessera token issued for another API', async (t) => {
  // A machine client allowed another API gets a genuine Tessera token, just not for this server.
  await runCli(tessera.cliEnv, ['resources', 'create', '--audience', 'https://other.example.com', '--scope', 'other:read', '--scope', 'mcp:tools']);
  const machine = JSON.parse((await runCli(tessera.cliEnv, ['clients', 'create', '--name', 'Other', '--grant', 'client_credentials', '--resource', 'https://other.example.com', '--scope', 'mcp:tools', '--json'])).stdout) as { client_id: string; client_secret: string };
  const token = await fetch(`${tessera.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${machine.client_id}:${machine.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://other.example.com', scope: 'mcp:tools' }),
  }).then(async (response) => (await response.json() as { access_token: string }).access_token);
  t.is(jose.decodeJwt(token).aud, 'https://other.example.com');
  const answer = await fetch(mcp.resource, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
  t.is(answer.status, 401);
  t.regex(answer.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
});
