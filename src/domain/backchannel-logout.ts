/**
 * OpenID Connect Back-Channel Logout 1.0, the sending side: when a person's session ends, every app
 * signed in through that session and registered with a `backchannel_logout_uri` gets a logout token
 * (a JWT naming the person `sub` and the session `sid`) posted to that URI.
 *
 * Sessions end in several places: RP-initiated logout (oidc-provider's end_session, routed here by
 * oidc/internals.ts), the account page (one session, or everywhere else), a password reset, a user
 * disabled, the admin API. They all hand the ended sessions to `sessionsEnded`, which only queues:
 * delivery runs in the background, with retries and backoff, so no page waits for an app's server.
 * Failures are logged and counted (`onOutcome`, the metrics listen). The queue is bounded: past
 * MAX_QUEUED, new tokens are dropped (and counted) rather than letting a dead receiver eat memory.
 *
 * Tokens are built and sent here, not by oidc-provider, so the CLI (`tessera users disable`) sends
 * them the same way the server does: signed with the store's current signing key for the client's
 * `id_token_signed_response_alg`, `typ: logout+jwt`, two minutes to live, no `nonce` (section 2.4).
 * Delivery refuses loopback and private addresses in production (after DNS resolution, so a name
 * pointing inward is refused too); outside production loopback receivers work, for development.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';

import { importJWK, SignJWT, type JWK } from 'jose';

import { isSpecialUseHost } from './clients.ts';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** What a delivery came to: sent, to be tried again, given up on, or never queued (queue full). */
export type LogoutOutcome = 'delivered' | 'retried' | 'failed' | 'dropped';

/** A session as the store keeps it: oidc-provider's Session payload. */
export interface EndedSession {
  readonly payload: Record<string, unknown>;
}

/** Told of sessions ended outside oidc-provider, so the apps signed in through them hear of it. */
export interface SessionLogout {
  sessionsEnded(sessions: readonly EndedSession[]): void;
}

export interface BackchannelLogoutDependencies {
  issuer: string;
  production: boolean;
  /** Client metadata by client_id (ClientService.findMetadata). */
  findClient(clientId: string): Promise<Record<string, unknown> | undefined>;
  /** The signing keys, current first (KeyService.material). */
  signingKeys(): Promise<readonly JWK[]>;
  onOutcome?(outcome: LogoutOutcome, detail: { clientId: string; error?: unknown; attempt: number }): void;
  /** Milliseconds before each retry; the default is 1 s, 5 s, 30 s, then it gives up. */
  retryDelaysMs?: readonly number[];
  /** Posts one logout token; Tessera's own HTTP delivery unless a test or a CLI passes another. */
  post?(url: string, body: string, production: boolean): Promise<number>;
}

interface Job {
  readonly clientId: string;
  readonly sub: string;
  readonly sid: string;
  attempt: number;
}

const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000];
const MAX_QUEUED = 10_000;
/** Sent at once; more wait their turn, so a burst (a popular app, everyone signed out) cannot open thousands of sockets. */
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 5_000;
const TOKEN_TTL_SECONDS = 120;

export class BackchannelLogout implements SessionLogout {
  readonly #deps: BackchannelLogoutDependencies;
  readonly #retryDelays: readonly number[];
  readonly #waiting: Job[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #observers = new Set<NonNullable<BackchannelLogoutDependencies['onOutcome']>>();
  #running = 0;
  #idle: Array<() => void> = [];

  constructor(deps: BackchannelLogoutDependencies) {
    this.#deps = deps;
    this.#retryDelays = deps.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  }

  /** Hears every outcome (the metrics count them). */
  observe(observer: NonNullable<BackchannelLogoutDependencies['onOutcome']>): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  #outcome(outcome: LogoutOutcome, detail: { clientId: string; error?: unknown; attempt: number }): void {
    this.#deps.onOutcome?.(outcome, detail);
    for (const observer of this.#observers) observer(outcome, detail);
  }

  /** Queues a logout token for each app signed in through each ended session. Never waits for delivery. */
  sessionsEnded(sessions: readonly EndedSession[]): void {
    for (const { payload } of sessions) {
      const sub = payload.accountId;
      const authorizations = payload.authorizations;
      if (typeof sub !== 'string' || !authorizations || typeof authorizations !== 'object') continue;
      for (const [clientId, authorization] of Object.entries(authorizations as Record<string, { sid?: unknown } | undefined>)) {
        if (typeof authorization?.sid === 'string') this.notify(clientId, sub, authorization.sid);
      }
    }
  }

  /** Queues one logout token (clients without a back-channel logout URI are skipped when it is sent). */
  notify(clientId: string, sub: string, sid: string): void {
    if (this.#waiting.length + this.#running + this.#timers.size >= MAX_QUEUED) {
      this.#outcome('dropped', { clientId, attempt: 0 });
      return;
    }
    this.#waiting.push({ clientId, sub, sid, attempt: 0 });
    this.#pump();
  }

  /** Logout tokens queued, being sent, or waiting for a retry. */
  get pending(): number {
    return this.#waiting.length + this.#running + this.#timers.size;
  }

  /** Resolves once nothing is queued or waiting for a retry (the CLI waits for this, up to a limit, before it exits). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops the retries still scheduled (shutdown); what is being sent finishes on its own. */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#waiting.length = 0;
    this.#settle();
  }

  #pump(): void {
    while (this.#running < CONCURRENCY && this.#waiting.length) {
      const job = this.#waiting.shift()!;
      this.#running += 1;
      void this.#deliver(job).finally(() => {
        this.#running -= 1;
        this.#pump();
        this.#settle();
      });
    }
  }

  #settle(): void {
    if (this.pending !== 0) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  async #deliver(job: Job): Promise<void> {
    job.attempt += 1;
    let client: Record<string, unknown> | undefined;
    try {
      client = await this.#deps.findClient(job.clientId);
      const uri = client?.backchannel_logout_uri;
      if (typeof uri !== 'string') return;
      const token = await this.#logoutToken(client!, job);
      const status = await (this.#deps.post ?? postForm)(uri, new URLSearchParams({ logout_token: token }).toString(), this.#deps.production);
      // Section 2.8: the RP answers 200 (or 204, which many frameworks send for an empty body).
      if (status !== 200 && status !== 204) throw new Error(`the back-channel logout URI answered ${status}`);
      this.#outcome('delivered', { clientId: job.clientId, attempt: job.attempt });
    } catch (error) {
      const delay = this.#retryDelays[job.attempt - 1];
      if (delay === undefined) {
        this.#outcome('failed', { clientId: job.clientId, error, attempt: job.attempt });
        return;
      }
      this.#outcome('retried', { clientId: job.clientId, error, attempt: job.attempt });
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#waiting.push(job);
        this.#pump();
      }, delay);
      timer.unref();
      this.#timers.add(timer);
    }
  }

  async #logoutToken(client: Record<string, unknown>, job: Job): Promise<string> {
    const alg = typeof client.id_token_signed_response_alg === 'string' ? client.id_token_signed_response_alg : 'RS256';
    const jwk = (await this.#deps.signingKeys()).find((key) => keyServes(key, alg));
    if (!jwk) throw new Error(`no signing key for ${alg}`);
    const key = await importJWK(jwk, alg);
    const now = Math.floor(Date.now() / 1000);
    // Section 2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce.
    return new SignJWT({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, sid: job.sid })
      .setProtectedHeader({ alg, typ: 'logout+jwt', ...(jwk.kid && { kid: jwk.kid }) })
      .setIssuer(this.#deps.issuer)
      .setAudience(job.clientId)
      .setSubject(job.sub)
      .setIssuedAt(now)
      .setExpirationTime(now + TOKEN_TTL_SECONDS)
      .setJti(randomUUID())
      .sign(key);
  }
}

/** Which signing key serves an algorithm: RSA for RS256 and PS256, P-256 for ES256, Ed25519 for EdDSA. */
function keyServes(key: JWK, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return key.kty === 'RSA';
  if (alg === 'ES256') return key.kty === 'EC' && key.crv === 'P-256';
  if (alg === 'EdDSA' || alg === 'Ed25519') return key.kty === 'OKP' && key.crv === 'Ed25519';
  return false;
}

/** In production, the receiver's address is checked after DNS resolution: no loopback, private or link-local address. */
function publicOnlyLookup(): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: false }, (error, address, family) => {
      if (error) return callback(error, address, family);
      if (isSpecialUseHost(String(address))) {
        return callback(Object.assign(new Error(`${hostname} resolves to a loopback or private address, refused in production`), { code: 'ERR_SPECIAL_USE_ADDRESS' }), address, family);
      }
      callback(null, address, family);
    });
  };
}

/** One form POST, no redirects followed, a few seconds at most; resolves with the status. */
function postForm(url: string, body: string, production: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    // An address literal is never looked up, so it is checked here.
    if (production && isSpecialUseHost(target.hostname)) {
      reject(new Error(`${target.hostname} is a loopback or private address, refused in production`));
      return;
    }
    const transport = target.protocol === 'https:' ? https : http;
    const request = transport.request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), 'user-agent': 'Tessera back-channel logout' },
      timeout: REQUEST_TIMEOUT_MS,
      ...(production && { lookup: publicOnlyLookup() }),
    }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${target.origin} within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}
