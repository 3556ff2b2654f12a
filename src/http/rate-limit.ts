/**
 * Rate limits, counted in the store (rate-limiter-flexible on the store's own table or collection),
 * so several Tessera instances share one count. Over a limit the answer is 429 with Retry-After:
 * Tessera's pages and JSON go through the error middleware (ERR_RATE_LIMITED); the token endpoint
 * and the other client-authenticating endpoints answer in OAuth's JSON error shape.
 *
 * Which address a request comes from is decided in one place, clientAddress(): the socket's peer,
 * unless that peer is a trusted proxy (TRUSTED_PROXIES), whose X-Forwarded-For is then believed.
 */
import { hash } from 'node:crypto';
import { isIP, type BlockList } from 'node:net';

import type { Context, Middleware, Next } from 'koa';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

import { BoundedMap } from '../bounded-map.ts';
import type { RateLimit, SecurityConfig } from '../config.ts';
import { normalizeEmail } from '../domain/accounts.ts';
import { isAppError, rateLimited } from '../errors.ts';
import type { Store } from '../store/port.ts';
import { isTrusted, normalizeAddress, trustedProxyList } from './trusted-proxies.ts';

/**
 * The address a request comes from. X-Forwarded-For is read from the right (the entry the nearest
 * proxy added) and trusted proxies are skipped, so a client cannot pick its address by sending the
 * header itself. Koa's `ctx.ip` is not used: with BEHIND_TLS_PROXY it believes the header from anyone.
 */
export function clientAddress(ctx: Pick<Context, 'req' | 'get'>, trustedProxies: BlockList): string {
  const peer = normalizeAddress(ctx.req.socket.remoteAddress) ?? 'unknown';
  if (peer === 'unknown' || !isTrusted(trustedProxies, peer)) return peer;
  return forwardedAddress(peer, ctx.get('X-Forwarded-For'), trustedProxies);
}

/** The address a trusted proxy `peer` forwarded a request for (its X-Forwarded-For, `header`). */
function forwardedAddress(peer: string, header: string, trustedProxies: BlockList): string {
  if (!header) return peer;
  const forwarded = header.split(',').map((entry) => entry.trim()).filter(Boolean);
  let address = peer;
  for (let index = forwarded.length - 1; index >= 0; index -= 1) {
    const hop = normalizeAddress(forwarded[index]);
    if (!hop) break;
    address = hop;
    if (!isTrusted(trustedProxies, hop)) break;
  }
  return address;
}

/** IPv4 addresses count one by one; IPv6 ones by /64, the block one subscriber normally gets. */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((group) => Number.parseInt(group || '0', 16).toString(16)).join(':')}::/64`;
}

/** Account identifiers are keyed by digest: fixed length, and no addresses at rest in the limits table. */
function identifierKey(value: string): string {
  return hash('sha256', value, 'base64url');
}

/**
 * Digests of (address, client) pairs already worked out: every token request needs its pair's key,
 * and the same few pairs come back thousands of times a second. Keys come from the outside, so the
 * memo keeps the latest 10,000.
 */
const clientKeys = new BoundedMap<string, string>(10_000);

/** The key of one client's failures from one address (see clientFailures). */
function clientFromAddress(address: string, clientId: string): string {
  const pair = `${address} ${clientId}`;
  let key = clientKeys.get(pair);
  if (key === undefined) {
    key = identifierKey(pair);
    clientKeys.set(pair, key);
  }
  return key;
}

interface ClientGate {
  checked: boolean;
  blockedMs: number;
  /** A plain boolean when this process remembers the store's answer (see CLEAR_ANSWER_MS). */
  check(clientId: string): boolean | Promise<boolean>;
}

/** Where limitFailedClientRequests leaves the request's gate, in ctx.state. */
const CLIENT_GATE = Symbol('tessera.clientGate');

/**
 * Whether the client about to authenticate may try (see oidc/internals.ts, which asks this before
 * oidc-provider looks the client up, with oidc-provider's current request context). Only the first
 * lookup of a request is the client authenticating; later ones (the client of an introspected
 * token) are not gated.
 */
export function clientMayAuthenticate(ctx: { state?: object } | undefined, clientId: string): boolean | Promise<boolean> {
  const gate = (ctx?.state as Record<symbol, ClientGate | undefined> | undefined)?.[CLIENT_GATE];
  if (!gate || gate.checked) return true;
  gate.checked = true;
  return gate.check(clientId);
}

type LimitName = keyof SecurityConfig['rateLimits'];

/**
 * How long this process believes the store's "not over the limit" answer for a key before asking
 * again. Without it every token request would read the store twice (address and client), a round
 * trip each with MongoDB; with it, traffic that does not fail costs one read per key per second.
 * Counting is unchanged (every failure is written to the store at once), and a failure counted
 * here forgets the answers for its keys, so this process sees its own over-limit keys at once and
 * another instance's at most this long after they went over.
 */
const CLEAR_ANSWER_MS = 1000;
/** Keys come from the outside (addresses, client ids): past this many remembered answers, start over. */
const CLEAR_ANSWERS_MAX = 10_000;

export class RateLimits {
  readonly #settings: SecurityConfig['rateLimits'];
  readonly #store: Pick<Store, 'rateLimiter'>;
  readonly #proxies: BlockList;
  readonly #limiters = new Map<LimitName, RateLimiterAbstract>();
  /**
   * A connection's peer and whether it is a trusted proxy: neither can change, so they are worked
   * out once per connection. From a trusted proxy, each request's X-Forwarded-For is still read.
   */
  readonly #peers = new WeakMap<object, { address: string; trusted: boolean }>();
  /** Per limit, key -> until when (epoch ms) a "not blocked" answer is believed; see CLEAR_ANSWER_MS. */
  readonly #clearUntil = new Map<LimitName, Map<string, number>>();

  constructor(settings: SecurityConfig['rateLimits'], trustedProxies: readonly string[], store: Pick<Store, 'rateLimiter'>) {
    this.#settings = settings;
    this.#store = store;
    this.#proxies = trustedProxyList(trustedProxies);
  }

  /** The client address the limits count, after trusted proxies. */
  address(ctx: Pick<Context, 'req' | 'get'>): string {
    const { socket } = ctx.req;
    let peer = this.#peers.get(socket);
    if (peer === undefined) {
      const address = normalizeAddress(socket.remoteAddress);
      if (address === undefined) return 'unknown';
      peer = { address, trusted: isTrusted(this.#proxies, address) };
      this.#peers.set(socket, peer);
    }
    return peer.trusted ? forwardedAddress(peer.address, ctx.get('X-Forwarded-For'), this.#proxies) : peer.address;
  }

  #limiter(name: LimitName): RateLimiterAbstract {
    let limiter = this.#limiters.get(name);
    if (!limiter) {
      const { points, seconds }: RateLimit = this.#settings[name];
      limiter = this.#store.rateLimiter({ keyPrefix: `tessera:${name}`, points, duration: seconds });
      this.#limiters.set(name, limiter);
    }
    return limiter;
  }

  /** Counts one action against every given limit; throws ERR_RATE_LIMITED (429) if any is exceeded. */
  async #consume(...counts: Array<[LimitName, string]>): Promise<void> {
    for (const [name, key] of counts) this.#clearUntil.get(name)?.delete(key);
    const results = await Promise.allSettled(counts.map(([name, key]) => this.#limiter(name).consume(key)));
    let waitMs = 0;
    for (const result of results) {
      if (result.status === 'fulfilled') continue;
      if (!(result.reason instanceof RateLimiterRes)) throw result.reason;
      waitMs = Math.max(waitMs, result.reason.msBeforeNext);
    }
    if (waitMs > 0 || results.some((result) => result.status === 'rejected')) throw rateLimited(waitMs);
  }

  /**
   * Milliseconds until `key` may act again under `name`, or 0; a read, never a write. A plain 0
   * (no promise) while this process still believes an earlier "not blocked" answer: the token
   * path asks twice per request, and almost always this is the answer.
   */
  #blockedFor(name: LimitName, key: string): number | Promise<number> {
    let clear = this.#clearUntil.get(name);
    if (!clear) {
      clear = new Map();
      this.#clearUntil.set(name, clear);
    }
    if ((clear.get(key) ?? 0) > Date.now()) return 0;
    return this.#askStore(name, key, clear);
  }

  async #askStore(name: LimitName, key: string, clear: Map<string, number>): Promise<number> {
    const state = await this.#limiter(name).get(key);
    const waitMs = state && state.consumedPoints >= this.#settings[name].points ? Math.max(state.msBeforeNext, 1) : 0;
    if (waitMs === 0) {
      if (clear.size >= CLEAR_ANSWERS_MAX) clear.clear();
      clear.set(key, Date.now() + CLEAR_ANSWER_MS);
    }
    return waitMs;
  }

  /** Every sign-in attempt counts, per address and per (normalised) email, known or not. */
  signIn(ctx: Context, email: string): Promise<void> {
    return this.#consume(['signInPerIp', addressKey(this.address(ctx))], ['signInPerAccount', identifierKey(normalizeEmail(String(email)))]);
  }

  /** An upstream provider's answer (the callback) counts as a sign-in attempt from its address. */
  upstreamCallback(ctx: Context): Promise<void> {
    return this.#consume(['signInPerIp', addressKey(this.address(ctx))]);
  }

  /**
   * A passwordless passkey sign-in names no account until it is answered, so its ceremony counts per
   * address, against the same limit as the password sign-in posts: asking for options is the step
   * every attempt takes (each answer needs a fresh, single-use challenge from it).
   */
  passwordlessSignIn(ctx: Context): Promise<void> {
    return this.#consume(['signInPerIp', addressKey(this.address(ctx))]);
  }

  /**
   * One use of an initial access token that may be used `uses` times (features/registration.ts):
   * the store's counter is incremented atomically, so concurrent registrations with the same token,
   * on any instance, get exactly `uses` successes between them. False when the uses are spent.
   */
  async countTokenUse(tokenKey: string, uses: number, seconds: number): Promise<boolean> {
    const limiter = this.#store.rateLimiter({ keyPrefix: 'tessera:registrationTokenUses', points: uses, duration: seconds });
    try {
      await limiter.consume(tokenKey);
      return true;
    } catch (error) {
      if (error instanceof RateLimiterRes) return false;
      throw error;
    }
  }

  /** Dynamic client registration (POST /reg), per address, whether or not the registration succeeds. */
  clientRegistration(ctx: Context): Promise<void> {
    return this.#consume(['clientRegistrationPerIp', addressKey(this.address(ctx))]);
  }

  registration(ctx: Context): Promise<void> {
    return this.#consume(['registrationPerIp', addressKey(this.address(ctx))]);
  }

  /** Every request for a reset link counts, per address and per email, known or not. */
  passwordReset(ctx: Context, email: string): Promise<void> {
    return this.#consume(['passwordResetPerIp', addressKey(this.address(ctx))], ['passwordResetPerAccount', identifierKey(normalizeEmail(String(email)))]);
  }

  /** Every second-factor check (TOTP, recovery code, email code, passkey) of an account counts. */
  secondFactor(_ctx: Context, sub: string): Promise<void> {
    return this.#consume(['secondFactorPerAccount', identifierKey(sub)]);
  }

  /**
   * Admin API (admin/authentication.ts): only requests refused for a missing or bad token count, per
   * address, so an operator's scripts cost no store writes. An address over the limit is answered
   * 429 before its token is looked at; finding out is a read.
   */
  async adminBlockedFor(ctx: Context): Promise<number> {
    return this.#blockedFor('adminFailuresPerIp', addressKey(this.address(ctx)));
  }

  async adminFailure(ctx: Context): Promise<void> {
    await this.#consume(['adminFailuresPerIp', addressKey(this.address(ctx))]).catch((error: unknown) => {
      if (!isAppError(error, 'ERR_RATE_LIMITED')) throw error;
    });
  }

  /**
   * RFC 8628 section 5.1: user codes are short enough to guess, so the device page limits the codes
   * an address may get wrong. Only misses count (the page notes them, noteUserCodeMiss); an address
   * over the limit is answered 429 with the error page before its code is looked at.
   */
  userCodeGuesses(): Middleware {
    const limits = this;
    return async function limitUserCodeGuesses(ctx: Context, next: Next) {
      if (ctx.method !== 'POST' || ctx.path !== '/device') return next();
      const address = addressKey(limits.address(ctx));
      const wait = await limits.#blockedFor('userCodePerIp', address);
      if (wait) throw rateLimited(wait);
      await next();
      if (!(ctx.state as Record<symbol, boolean | undefined>)[USER_CODE_MISS]) return;
      await limits.#consume(['userCodePerIp', address]).catch((error: unknown) => {
        if (!isAppError(error, 'ERR_RATE_LIMITED')) throw error;
      });
    };
  }

  /**
   * For token requests: a device code may be polled once per `intervalSeconds` (one point per window,
   * counted in the store, so every instance sees the same polls). Counted only for device codes
   * still waiting for the person, which is when oidc/internals.ts asks.
   */
  devicePolls(intervalSeconds: number): Middleware {
    const limiter = this.#store.rateLimiter({ keyPrefix: 'tessera:devicePoll', points: 1, duration: intervalSeconds });
    const tooSoon = async (key: string) => {
      try {
        await limiter.consume(key);
        return false;
      } catch (error) {
        if (error instanceof RateLimiterRes) return true;
        throw error;
      }
    };
    return function limitDevicePolls(ctx: Context, next: Next) {
      if (ctx.method === 'POST' && ctx.path === '/token') (ctx.state as Record<symbol, unknown>)[DEVICE_POLL] = tooSoon;
      return next();
    };
  }

  /**
   * For the client-authenticating endpoints: only FAILED requests (400, 401) count, per address,
   * and per client that exists FROM that address. A client id is public (every authorization
   * request shows it), so counting a client's failures from everywhere together would let anyone
   * lock it out with a few bad requests; counted per address and client, an attacker only locks
   * itself out, while guessing a client's credentials from one address stays as limited as before
   * (and guessing from many addresses meets each address's own limit; a generated secret has 256
   * bits, a key or certificate cannot be guessed at all). A successful token request stays free of
   * store writes. A request from an address, or for a client from an address, already over its
   * limit is answered 429 before any credential is checked; looking that up is a read.
   * `authenticatingPaths` are those endpoints (oidc/features/index.ts, CLIENT_AUTHENTICATING_PATHS).
   */
  clientFailures(authenticatingPaths: ReadonlySet<string>): Middleware {
    const limits = this;
    return async function limitFailedClientRequests(ctx: Context, next: Next) {
      if (ctx.method !== 'POST' || !authenticatingPaths.has(ctx.path)) return next();
      const address = addressKey(limits.address(ctx));
      const addressBlocked = limits.#blockedFor('tokenFailuresPerIp', address);
      const addressWait = typeof addressBlocked === 'number' ? addressBlocked : await addressBlocked;
      if (addressWait) return tooManyClientRequests(ctx, addressWait);

      const gate: ClientGate = {
        checked: false,
        blockedMs: 0,
        check(clientId) {
          const blocked = limits.#blockedFor('tokenFailuresPerClient', clientFromAddress(address, clientId));
          if (typeof blocked === 'number') {
            gate.blockedMs = blocked;
            return blocked === 0;
          }
          return blocked.then((ms) => {
            gate.blockedMs = ms;
            return ms === 0;
          });
        },
      };
      (ctx.state as Record<symbol, ClientGate>)[CLIENT_GATE] = gate;
      await next();
      if (gate.blockedMs) return tooManyClientRequests(ctx, gate.blockedMs);

      if ((ctx.status === 400 || ctx.status === 401) && (ctx.body as { error?: unknown } | undefined)?.error !== 'use_dpop_nonce') {
        const clientId = (ctx as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId;
        const counts: Array<[LimitName, string]> = [['tokenFailuresPerIp', address]];
        if (clientId) counts.push(['tokenFailuresPerClient', clientFromAddress(address, clientId)]);
        // The failure is already answered; going over the limit shows on the next request.
        await limits.#consume(...counts).catch((error: unknown) => {
          if (!isAppError(error, 'ERR_RATE_LIMITED')) throw error;
        });
      }
    };
  }
}

/** Where a request for the device page notes that the user code it carried matched nothing (see noteUserCodeMiss). */
const USER_CODE_MISS = Symbol('tessera.userCodeMiss');

/** The device flow's user-code page (oidc/features/device-flow.ts) calls this when the code entered matched no device: a guess, or a typo. */
export function noteUserCodeMiss(ctx: { state?: object } | undefined): void {
  if (ctx?.state) (ctx.state as Record<symbol, boolean>)[USER_CODE_MISS] = true;
}

/** Where limitDevicePolls leaves the request's poll check, in ctx.state (see devicePollTooSoon). */
const DEVICE_POLL = Symbol('tessera.devicePoll');

/**
 * Whether a device polls the token endpoint sooner than `interval` after its previous poll (RFC 8628
 * section 3.5: slow_down). Asked by oidc/internals.ts when a device code is read for a token request,
 * with oidc-provider's current request context; true only once per request.
 */
export async function devicePollTooSoon(ctx: { state?: object } | undefined, deviceCodeKey: string): Promise<boolean> {
  const check = (ctx?.state as Record<symbol, ((key: string) => Promise<boolean>) | undefined> | undefined)?.[DEVICE_POLL];
  return check ? check(deviceCodeKey) : false;
}

function tooManyClientRequests(ctx: Context, msBeforeNext: number): void {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  ctx.remove('WWW-Authenticate');
  ctx.status = 429;
  ctx.set('Retry-After', String(seconds));
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'invalid_request', error_description: `too many failed requests; retry after ${seconds} seconds` };
}
