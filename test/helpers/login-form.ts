/**
 * Sign-in attempts through the real pages, as a browser makes them: an authorization request, the
 * login form it leads to, and the form posted back. Used by the lockout and rate-limit tests.
 */
import type * as oidc from 'openid-client';

import { authorizationRequest, discover, RP_CALLBACK } from './relying-party.ts';
import type { TestServer } from './server.ts';
import { readForm, UserAgent, type Page } from './user-agent.ts';

export interface LoginForm {
  agent: UserAgent;
  page: Page;
  /** Absolute URL the form posts to. */
  action: string;
  fields: Record<string, string>;
}

const configurations = new WeakMap<TestServer, Promise<oidc.Configuration>>();

function configurationOf(server: TestServer): Promise<oidc.Configuration> {
  let configuration = configurations.get(server);
  if (!configuration) {
    configuration = discover(server.issuer);
    configurations.set(server, configuration);
  }
  return configuration;
}

/** Opens the login page of a fresh authorization request of the static `test-rp` client. */
export async function openLoginForm(server: TestServer, agent = new UserAgent()): Promise<LoginForm> {
  const request = await authorizationRequest(await configurationOf(server));
  const page = await agent.follow(request.url.href, RP_CALLBACK);
  const form = readForm(page.body, '/login');
  return { agent, page, action: new URL(form.action, page.url).href, fields: form.fields };
}

/** Posts the login form; returns the answer and how long it took (the form was loaded beforehand). */
export async function postLogin(form: LoginForm, email: string, password: string, headers?: Record<string, string>): Promise<Page & { milliseconds: number }> {
  const started = performance.now();
  const page = await form.agent.request(form.action, { form: { ...form.fields, email, password }, ...(headers && { headers }) });
  return { ...page, milliseconds: performance.now() - started };
}

/** One whole attempt: open the login page, post the credentials. */
export async function attemptSignIn(server: TestServer, email: string, password: string): Promise<Page & { milliseconds: number }> {
  return postLogin(await openLoginForm(server), email, password);
}

/** A page with what differs between two renderings of the same form blanked out (tokens, uid, request handle, typed email). */
export function normalizedPage(body: string, email: string): string {
  return body
    .replace(/name="_csrf" value="[^"]*"/g, 'name="_csrf" value="…"')
    // The language switcher's handle on this authorization request (one per request, like the uid).
    .replace(/name="request" value="[^"]*"/g, 'name="request" value="…"')
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/…')
    .replace(/uid=[A-Za-z0-9_-]+/g, 'uid=…')
    .replaceAll(email, '…@…');
}
