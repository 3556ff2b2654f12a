/**
 * What the account page shows about where a person is signed in (oidc-provider Sessions) and which
 * apps they let in (Grants), and the two ways to end them. Records are found through the store's
 * `findByAccountId`; ending goes through oidc-provider's own models, so its adapter sees every change.
 */
import { createHash } from 'node:crypto';

import type { Provider } from 'oidc-provider';

import type { SessionLogout } from '../domain/backchannel-logout.ts';
import type { OidcPayload, OidcStore } from '../store/port.ts';
import { ACCOUNT_CLIENT_ID } from './account-client.ts';

export interface SessionView {
  /** The store id of the Session record (oidc-provider's jti, the session cookie's value). */
  id: string;
  current: boolean;
  signedInAt: Date | undefined;
  lastActiveAt: Date | undefined;
  userAgent: string | undefined;
  /** "Firefox on Linux": the User-Agent in a few words. */
  device: string | undefined;
  /** Names of the apps signed into in that session (the account page itself left out). */
  apps: string[];
}

export interface ConnectedApp {
  clientId: string;
  name: string;
  /** OpenID Connect scopes granted (openid, profile, ...). */
  scopes: string[];
  /** API scopes granted, per resource server audience. */
  resources: Record<string, string[]>;
  firstGrantedAt: Date | undefined;
  grantIds: string[];
}

type Authorizations = Record<string, { sid?: string; grantId?: string } | undefined>;

function authorizationsOf(payload: OidcPayload): Authorizations {
  const value = payload.authorizations;
  return value && typeof value === 'object' ? value as Authorizations : {};
}

function epoch(value: unknown): Date | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? new Date(value * 1000) : undefined;
}

/**
 * How the account page and the admin API name a session: a digest of its store id, so no store key
 * leaves the server (the store id was once the cookie's value itself).
 */
export function sessionHandle(storeId: string): string {
  return createHash('sha256').update(`tessera session ${storeId}`).digest('base64url');
}
/** The session whose account-page authorization carries this `sid`, if it is still live. */
export async function findAccountSession(oidc: OidcStore, sub: string, sid: string): Promise<{ id: string; payload: OidcPayload } | undefined> {
  const sessions = await oidc.findByAccountId('Session', sub);
  return sessions.find(({ payload }) => payload.accountId === sub && authorizationsOf(payload)[ACCOUNT_CLIENT_ID]?.sid === sid);
}

export type ClientNames = (clientId: string) => Promise<string>;

/** The account's sessions, as the store keeps them. */
export async function accountSessions(oidc: OidcStore, sub: string): Promise<Array<{ id: string; payload: OidcPayload }>> {
  return (await oidc.findByAccountId('Session', sub)).filter(({ payload }) => payload.accountId === sub);
}

/**
 * Ends one session: through oidc-provider when it can load it (its own bookkeeping runs), else
 * straight in the store; the apps signed in through it are sent logout tokens (in the background).
 */
export async function destroySession(provider: Provider, oidc: OidcStore, session: { id: string; payload: OidcPayload }, logout: SessionLogout): Promise<void> {
  const loaded = await provider.Session.find(session.id);
  if (loaded) await loaded.destroy();
  else await oidc.destroy('Session', session.id);
  logout.sessionsEnded([session]);
}

export async function listSessions(oidc: OidcStore, sub: string, currentId: string, sessionTtlSeconds: number, clientName: ClientNames): Promise<SessionView[]> {
  const sessions = await accountSessions(oidc, sub);
  const views = await Promise.all(sessions.map(async ({ id, payload }) => {
    const exp = typeof payload.exp === 'number' ? payload.exp : undefined;
    const clientIds = Object.keys(authorizationsOf(payload)).filter((clientId) => clientId !== ACCOUNT_CLIENT_ID);
    const userAgent = typeof payload.userAgent === 'string' ? payload.userAgent : undefined;
    return {
      id,
      current: id === currentId,
      signedInAt: epoch(payload.loginTs) ?? epoch(payload.iat),
      // oidc-provider saves a session, with a fresh expiry, each time it is used.
      lastActiveAt: exp === undefined ? undefined : epoch(exp - sessionTtlSeconds),
      userAgent,
      device: userAgent === undefined ? undefined : describeUserAgent(userAgent),
      apps: await Promise.all(clientIds.map(clientName)),
    };
  }));
  return views.sort((a, b) => Number(b.current) - Number(a.current) || (b.lastActiveAt?.getTime() ?? 0) - (a.lastActiveAt?.getTime() ?? 0));
}

/** Ends every session of the account but `keepId`: those browsers must sign in again. Returns how many ended. */
export async function endOtherSessions(provider: Provider, oidc: OidcStore, sub: string, keepId: string, logout: SessionLogout): Promise<number> {
  const others = (await oidc.findByAccountId('Session', sub)).filter(({ id }) => id !== keepId);
  for (const session of others) await destroySession(provider, oidc, session, logout);
  return others.length;
}

export async function listConnectedApps(oidc: OidcStore, sub: string, clientName: ClientNames): Promise<ConnectedApp[]> {
  const byClient = new Map<string, ConnectedApp>();
  for (const { id, payload } of await oidc.findByAccountId('Grant', sub)) {
    const clientId = typeof payload.clientId === 'string' ? payload.clientId : undefined;
    if (!clientId || clientId === ACCOUNT_CLIENT_ID || payload.accountId !== sub) continue;
    let app = byClient.get(clientId);
    if (!app) {
      app = { clientId, name: await clientName(clientId), scopes: [], resources: {}, firstGrantedAt: undefined, grantIds: [] };
      byClient.set(clientId, app);
    }
    app.grantIds.push(id);
    const granted = epoch(payload.iat);
    if (granted && (!app.firstGrantedAt || granted < app.firstGrantedAt)) app.firstGrantedAt = granted;
    const openid = payload.openid as { scope?: unknown } | undefined;
    app.scopes = union(app.scopes, scopeList(openid?.scope));
    for (const [audience, scope] of Object.entries((payload.resources as Record<string, unknown> | undefined) ?? {})) {
      app.resources[audience] = union(app.resources[audience] ?? [], scopeList(scope));
    }
  }
  return [...byClient.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Withdraws everything the account granted an app: its grants, and every access token, refresh
 * token and authorization code issued under them, so the app's tokens stop working at once (JWT
 * access tokens, which are never stored, run out on their own within their short lifetime).
 * Returns false when the account had granted that app nothing.
 */
export async function revokeApp(provider: Provider, oidc: OidcStore, sub: string, clientId: string): Promise<boolean> {
  if (clientId === ACCOUNT_CLIENT_ID) return false;
  const grants = (await oidc.findByAccountId('Grant', sub)).filter(({ payload }) => payload.clientId === clientId && payload.accountId === sub);
  for (const { id } of grants) {
    await Promise.all([
      provider.AccessToken.revokeByGrantId(id),
      provider.RefreshToken.revokeByGrantId(id),
      provider.AuthorizationCode.revokeByGrantId(id),
    ]);
    const grant = await provider.Grant.find(id);
    if (grant) await grant.destroy();
    else await oidc.destroy('Grant', id);
  }
  return grants.length > 0;
}

const BROWSERS: Array<[RegExp, string]> = [[/Edg\//, 'Edge'], [/OPR\//, 'Opera'], [/Firefox\//, 'Firefox'], [/Chrom(e|ium)\//, 'Chrome'], [/Safari\//, 'Safari']];
const SYSTEMS: Array<[RegExp, string]> = [[/Android/, 'Android'], [/iPhone|iPad|iPod/, 'iOS'], [/Windows/, 'Windows'], [/Mac OS X|Macintosh/, 'macOS'], [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux']];

/** The browser and system a User-Agent names, in a few words; the raw string when it names neither. */
export function describeUserAgent(userAgent: string): string {
  const browser = BROWSERS.find(([pattern]) => pattern.test(userAgent))?.[1];
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? userAgent.slice(0, 60);
}

function scopeList(value: unknown): string[] {
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : [];
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}
