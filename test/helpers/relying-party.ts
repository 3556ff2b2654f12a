/**
 * A relying party built on openid-client (the library real RPs use), plus the person-side steps of
 * the flow through Tessera's HTML pages via UserAgent.
 */
import * as oidc from 'openid-client';

import { readForm, UserAgent, type Page } from './user-agent.ts';

export const RP_CALLBACK = 'http://localhost:9/callback';
export const RP_HOME = 'http://localhost:9/';

/** A confidential client as an operator would put it in config/clients.json. */
export function staticClient(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: 'test-rp',
    client_secret: 'test-rp-secret-with-plenty-of-entropy-0123456789',
    client_name: 'Test RP',
    redirect_uris: [RP_CALLBACK],
    post_logout_redirect_uris: [RP_HOME],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...overrides,
  };
}

export async function discover(issuer: string, client = staticClient()): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(issuer),
    String(client.client_id),
    { id_token_signed_response_alg: client.id_token_signed_response_alg as string | undefined },
    client.client_secret ? oidc.ClientSecretBasic(String(client.client_secret)) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
}

export interface AuthorizationRequest {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

export async function authorizationRequest(config: oidc.Configuration, parameters: Record<string, string> = {}): Promise<AuthorizationRequest> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: RP_CALLBACK,
    scope: 'openid profile email offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...parameters,
  });
  return { url, verifier, state, nonce };
}

export interface Person {
  email: string;
  password: string;
  name?: string;
}

let counter = 0;
export function newPerson(): Person {
  counter += 1;
  return { email: `person${counter}.${Date.now()}@example.com`, password: 'correct horse battery staple', name: `Person ${counter}` };
}

/** Submits the form on `page` whose action contains `actionPart`, with `values` over its hidden fields. */
export function submit(agent: UserAgent, page: Page, actionPart: string, values: Record<string, string>, stopAt = RP_CALLBACK): Promise<Page> {
  const form = readForm(page.body, actionPart);
  return agent.follow(new URL(form.action, page.url).href, stopAt, { form: { ...form.fields, ...values } });
}

/**
 * Drives the pages from the authorization request to the redirect back to the RP: registers or
 * signs in as `person`, then allows (or denies) consent when asked. Returns the callback URL.
 */
export async function authorize(agent: UserAgent, request: AuthorizationRequest, person: Person, options: { register?: boolean; consent?: 'allow' | 'deny' } = {}): Promise<URL> {
  let page = await agent.follow(request.url.href, RP_CALLBACK);
  if (page.body.includes('/login"')) {
    if (options.register) {
      const registration = await agent.request(new URL(readForm(page.body, '/login').action.replace(/\/login$/, '/register'), page.url).href);
      page = await submit(agent, { ...registration, url: page.url }, '/register', {
        email: person.email,
        password: person.password,
        password_confirmation: person.password,
        name: person.name ?? '',
      });
    } else {
      page = await submit(agent, page, '/login', { email: person.email, password: person.password });
    }
  }
  if (page.body.includes('/consent"')) {
    page = await submit(agent, page, '/consent', { decision: options.consent ?? 'allow' });
  }
  const location = page.status >= 300 && page.status < 400 ? page.url : undefined;
  if (!location?.startsWith(RP_CALLBACK)) {
    throw new Error(`expected a redirect to the RP, got ${page.status}:\n${page.body.slice(0, 1500)}`);
  }
  return new URL(location);
}

/** The whole "Sign in with" flow: returns openid-client's validated token response. */
export async function signIn(config: oidc.Configuration, agent: UserAgent, person: Person, options: { register?: boolean; parameters?: Record<string, string> } = {}) {
  const request = await authorizationRequest(config, options.parameters);
  const callback = await authorize(agent, request, person, options);
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return { tokens, callback, request };
}
