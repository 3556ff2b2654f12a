/**
 * Upstream identity providers for tests, real servers on loopback ports:
 * - an OpenID provider: a bare oidc-provider whose interaction signs in whoever the test says
 *   (`upstream.user`) without a page, or refuses (`upstream.deny`); knobs to slow its token
 *   endpoint and to spoil the signature of its ID tokens;
 * - a GitHub-shaped OAuth 2.0 server: authorize, access_token (PKCE checked), /user, /user/emails.
 * Both on 127.0.0.1, while Tessera answers on localhost: like a browser, HostAgent keeps cookies per host.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';

import { UserAgent, type Page } from './user-agent.ts';

export interface UpstreamUser {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  given_name?: string;
  family_name?: string;
}

export interface OidcUpstream {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Who the next sign-in at the upstream is. */
  user: UpstreamUser;
  /** Answer the next authorization with error=access_denied. */
  deny: boolean;
  /** Hold each token request this long before answering. */
  tokenDelayMs: number;
  /** Change one character of each ID token's signature. */
  spoilIdTokens: boolean;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The upstream's records, in memory (the fixture lives as long as its test). */
function memoryAdapter(): new (name: string) => Adapter {
  const records = new Map<string, AdapterPayload>();
  return class MemoryAdapter implements Adapter {
    readonly #name: string;
    constructor(name: string) {
      this.#name = name;
    }
    async upsert(id: string, payload: AdapterPayload) {
      records.set(`${this.#name}:${id}`, payload);
    }
    async find(id: string) {
      return records.get(`${this.#name}:${id}`);
    }
    async findByUserCode() {
      return undefined;
    }
    async findByUid(uid: string) {
      return [...records.entries()].find(([key, payload]) => key.startsWith(`${this.#name}:`) && payload.uid === uid)?.[1];
    }
    async consume(id: string) {
      const payload = records.get(`${this.#name}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      records.delete(`${this.#name}:${id}`);
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, payload] of records) if (payload.grantId === grantId) records.delete(key);
    }
  };
}

/** A bare oidc-provider as the upstream; `redirectUris` are Tessera's callbacks for it. */
export async function startOidcUpstream(redirectUris: string[]): Promise<OidcUpstream> {
  const server = createServer();
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'tessera';
  const clientSecret = randomBytes(24).toString('base64url');
  const state: { user: UpstreamUser; deny: boolean; tokenDelayMs: number; spoilIdTokens: boolean } = {
    user: { sub: 'upstream-user-1', email: 'someone@example.com', email_verified: true, name: 'Some One' },
    deny: false,
    tokenDelayMs: 0,
    spoilIdTokens: false,
  };
  const accounts = new Map<string, UpstreamUser>();
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const provider = new Provider(issuer, {
    adapter: memoryAdapter(),
    jwks: { keys: [{ ...await exportJWK(privateKey), alg: 'ES256', use: 'sig', kid: 'upstream-key' }] },
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris, grant_types: ['authorization_code'], response_types: ['code'], id_token_signed_response_alg: 'ES256' }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name'] },
    async findAccount(_ctx, sub) {
      const user = accounts.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: () => ({ ...user }) };
    },
    // Consent is implied: the test's person always agrees at the upstream.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false } },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    ttl: { AccessToken: 300, IdToken: 300, AuthorizationCode: 60, Session: 600, Interaction: 600, Grant: 600 },
  });
  provider.on('server_error', (_ctx, error) => process.stderr.write(`oidc upstream server_error: ${String(error)}\n`));
  const callback = provider.callback();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', issuer);
      if (url.pathname.startsWith('/interaction/')) {
        // No page: each sign-in at the upstream is whoever the test set, on a fresh upstream session.
        const result = state.deny
          ? { error: 'access_denied', error_description: 'The person said no' }
          : (accounts.set(state.user.sub, { ...state.user }), { login: { accountId: state.user.sub } });
        await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
        return;
      }
      if (url.pathname === '/token') {
        if (state.tokenDelayMs) await new Promise((resolve) => setTimeout(resolve, state.tokenDelayMs));
        if (state.spoilIdTokens) spoilIdToken(res);
      }
      callback(req, res);
    })().catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });

  return {
    issuer,
    clientId,
    clientSecret,
    get user() { return state.user; },
    set user(value) { state.user = value; },
    get deny() { return state.deny; },
    set deny(value) { state.deny = value; },
    get tokenDelayMs() { return state.tokenDelayMs; },
    set tokenDelayMs(value) { state.tokenDelayMs = value; },
    get spoilIdTokens() { return state.spoilIdTokens; },
    set spoilIdTokens(value) { state.spoilIdTokens = value; },
    close: () => closeServer(server),
  };
}

/** Flips one character of the ID token's signature in the token response, keeping its length (and Content-Length). */
function spoilIdToken(res: ServerResponse): void {
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (chunk !== undefined && typeof chunk !== 'function') {
      const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
      // The first character of the signature: the last one may carry only padding bits.
      const spoiled = text.replace(/("id_token":"[^".]+\.[^".]+\.)([A-Za-z0-9_-])/, (_match, head: string, first: string) => `${head}${first === 'A' ? 'B' : 'A'}`);
      return end(Buffer.from(spoiled), ...rest);
    }
    return end(chunk, ...rest);
  }) as typeof res.end;
}

export interface GithubUpstream {
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  user: { id: number; login: string; name?: string };
  emails: Array<{ email: string; primary: boolean; verified: boolean }>;
  /** Requests the API received with a valid token, for assertions. */
  readonly apiCalls: string[];
  close(): Promise<void>;
}

/** GitHub's OAuth 2.0 web flow and the two API calls Tessera makes, as small as will do. */
export async function startGithubUpstream(): Promise<GithubUpstream> {
  const server = createServer();
  const port = await listen(server);
  const url = `http://127.0.0.1:${port}`;
  const clientId = 'Iv1.tessera';
  const clientSecret = randomBytes(20).toString('hex');
  const codes = new Map<string, { redirectUri: string; challenge: string }>();
  const tokens = new Set<string>();
  const fixture: GithubUpstream = {
    url,
    clientId,
    clientSecret,
    user: { id: 583231, login: 'octocat', name: 'The Octocat' },
    emails: [{ email: 'octocat@example.com', primary: true, verified: true }],
    apiCalls: [],
    close: () => closeServer(server),
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  server.on('request', (req, res) => {
    const target = new URL(req.url ?? '/', url);
    if (target.pathname === '/login/oauth/authorize') {
      const redirectUri = target.searchParams.get('redirect_uri') ?? '';
      if (target.searchParams.get('client_id') !== clientId || target.searchParams.get('code_challenge_method') !== 'S256') return json(res, 400, { error: 'invalid_request' });
      const code = randomBytes(10).toString('hex');
      codes.set(code, { redirectUri, challenge: target.searchParams.get('code_challenge') ?? '' });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', target.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (target.pathname === '/login/oauth/access_token' && req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => {
        const form = new URLSearchParams(body);
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const [id, secret] = basic ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent) : [form.get('client_id'), form.get('client_secret')];
        if (id !== clientId || secret !== clientSecret) return json(res, 401, { error: 'invalid_client' });
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        if (!grant || grant.redirectUri !== form.get('redirect_uri') || createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) {
          return json(res, 400, { error: 'bad_verification_code' });
        }
        const token = `gho_${randomBytes(16).toString('hex')}`;
        tokens.add(token);
        json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      });
      return;
    }
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !tokens.has(token)) return json(res, 401, { message: 'Bad credentials' });
    fixture.apiCalls.push(target.pathname);
    if (target.pathname === '/user') return json(res, 200, { ...fixture.user, email: null });
    if (target.pathname === '/user/emails') return json(res, 200, fixture.emails);
    json(res, 404, { message: 'Not Found' });
  });
  return fixture;
}

/** A browser's cookie behaviour across hosts: one jar per host name (ports share a jar, as in browsers). */
export class HostAgent {
  readonly #agents = new Map<string, UserAgent>();

  agentFor(url: string): UserAgent {
    const host = new URL(url).hostname;
    let agent = this.#agents.get(host);
    if (!agent) {
      agent = new UserAgent();
      this.#agents.set(host, agent);
    }
    return agent;
  }

  request(url: string, init?: Parameters<UserAgent['request']>[1]): Promise<Page> {
    return this.agentFor(url).request(url, init);
  }

  /** Drops every cookie of that host (say, to sign in at the upstream as someone else). */
  forget(url: string): void {
    this.#agents.delete(new URL(url).hostname);
  }

  /** Follows redirects across hosts until a page, or until a redirect to `stopAt` (returned unfollowed, its target as `url`). */
  async follow(url: string, stopAt: string, init?: Parameters<UserAgent['request']>[1]): Promise<Page> {
    let page = await this.request(url, init);
    for (let hops = 0; hops < 20; hops += 1) {
      const location = page.headers.get('location');
      if (page.status < 300 || page.status >= 400 || !location) return page;
      const next = new URL(location, page.url).href;
      if (next.startsWith(stopAt)) return { ...page, url: next };
      page = await this.request(next);
    }
    throw new Error(`too many redirects from ${url}`);
  }
}
