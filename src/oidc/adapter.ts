/**
 * The one oidc-provider adapter, generic over model names, on top of whichever store is configured.
 * Two models get a little policy on the way through:
 * - Client reads come from the ClientService's in-memory cache (hot path: every token request);
 * - Consuming a single-use record (code, refresh token, device code) must be won: oidc-provider reads
 *   the record, checks `consumed`, then consumes, so concurrent redemptions all pass its check. The
 *   store's compare-and-set says which call consumed it; every other call is a reuse: the grant is
 *   revoked and the request fails with invalid_grant (RFC 9700 section 4.14.2).
 * - RefreshToken reads honour the reuse grace period: a token rotated moments ago is handed back
 *   as not yet consumed, and consuming it again is allowed, so a retried refresh (an answer lost to
 *   a crash or a dropped connection) succeeds. Lineages never fork: the rotated token records its
 *   successor, and a new successor replaces (destroys) the one before; if that one was used
 *   already, the old token's reuse is real reuse and the grant is revoked.
 * - Every record but clients and grants is keyed by a digest of its value (see storeKey), and a
 *   device code's user code is kept as a digest too (see userCodeKey).
 * - A pushed authorization request is taken out of the store when its request_uri is opened, so it is opened once.
 * A store outage becomes TemporarilyUnavailable on the way out, so oidc-provider answers 503 rather than 500.
 */
import { createHash } from 'node:crypto';

import { errors, Provider, type Adapter, type AdapterPayload } from 'oidc-provider';

import { BoundedMap } from '../bounded-map.ts';
import type { ClientService } from '../domain/clients.ts';
import { isStoreUnavailable } from '../store/outage.ts';
import type { OidcPayload, OidcStore } from '../store/port.ts';

/**
 * oidc-provider turns any adapter failure into 500 server_error. A store outage is not a bug: the
 * client hears `temporarily_unavailable` (RFC 6749 section 4.1.2.1) with 503, or, at the
 * authorization endpoint, in the redirect back to it; ProviderHost adds Retry-After.
 */
export class TemporarilyUnavailable extends errors.OIDCProviderError {
  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.expose = true;
    this.error_description = 'The service is briefly unavailable. Try again in a few seconds.';
  }
}

function guarded<T>(work: Promise<T>): Promise<T> {
  return work.catch((error: unknown) => {
    throw isStoreUnavailable(error) ? new TemporarilyUnavailable(error) : error;
  });
}

/**
 * The same conversion for a domain service oidc-provider calls through its configuration hooks
 * (findAccount, resource server info, ...): every method's store outage becomes TemporarilyUnavailable.
 * Methods run on the service itself (its private fields stay reachable); the result is cached per method.
 */
export function providerFacing<T extends object>(service: T): T {
  const methods = new Map<PropertyKey, unknown>();
  return new Proxy(service, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      let method = methods.get(property);
      if (method === undefined) {
        method = (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          return result instanceof Promise ? guarded(result) : result;
        };
        methods.set(property, method);
      }
      return method;
    },
  });
}

export interface AdapterDependencies {
  oidc: OidcStore;
  clients: ClientService;
  refreshReuseGraceSeconds: number;
}

export type AdapterConstructor = new (model: string) => Adapter;

export function createAdapterClass({ oidc, clients, refreshReuseGraceSeconds }: AdapterDependencies): AdapterConstructor {
  return class TesseraAdapter implements Adapter {
    readonly model: string;

    constructor(model: string) {
      this.model = model;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      // Only dynamic registration (RFC 7591/7592) writes clients through oidc-provider: they join the
      // clients every other part of Tessera lists, marks and purges (domain/clients.ts).
      if (this.model === 'Client') return guarded(clients.saveRegistered(payload as Record<string, unknown>));
      const keepFor = expiresIn > 0 ? expiresIn + (AFTERLIFE_SECONDS[this.model] ?? 0) : undefined;
      await guarded(oidc.upsert(this.model, storeKey(this.model, id), storedPayload(this.model, id, payload), keepFor));
      // Without a grace period a second consumer is refused outright, so no lineage can fork: no successor to keep.
      if (this.model === 'RefreshToken' && refreshReuseGraceSeconds > 0) await guarded(recordSuccessor(id));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') {
        // In memory already (the hot path: every token request), or read through the service.
        return (clients.cachedMetadata(id) ?? (await guarded(clients.findMetadata(id)))) as AdapterPayload | undefined;
      }
      if (this.model === 'PushedAuthorizationRequest' && Provider.ctx?.oidc?.route === 'authorization') {
        // RFC 9126 section 4: a request_uri is used once. oidc-provider marks it consumed only when the
        // authorization completes, so opening it twice meanwhile would start two authorizations; the
        // first open takes it out of the store instead (atomic read-and-delete), a second open finds nothing.
        return withId(id, await guarded(oidc.take(this.model, storeKey(this.model, id))));
      }
      const payload = withId(id, await guarded(oidc.find(this.model, storeKey(this.model, id))));
      if (this.model === 'RefreshToken' && payload?.consumed && withinGrace(payload.consumed, refreshReuseGraceSeconds)) {
        const { consumed: _consumed, ...fresh } = payload;
        return fresh;
      }
      return payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return (await guarded(oidc.findByUid(this.model, uid))) as AdapterPayload | undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const payload = await guarded(oidc.findByUserCode(this.model, userCodeKey(userCode)));
      if (payload === undefined) return undefined;
      // oidc-provider compares the user code it looked for with the record's: it gets back the value it
      // knows. The device code's value is not known here (only its digest): the record goes out under
      // its store key, marked, so saving it again (approval, denial) writes the same record.
      const jti = typeof payload.jti === 'string' ? `${STORE_KEY_MARK}${payload.jti}` : payload.jti;
      return { ...payload, jti, userCode } as AdapterPayload;
    }

    async consume(id: string): Promise<void> {
      const key = storeKey(this.model, id);
      if (await guarded(oidc.consume(this.model, key))) return;
      // Taken out of the store when it was opened (see find): single use is already settled.
      if (this.model === 'PushedAuthorizationRequest') return;
      const record = await guarded(oidc.find(this.model, key));
      // A retry within the grace period; recordSuccessor keeps it to one lineage.
      if (this.model === 'RefreshToken' && record !== undefined && withinGrace(record.consumed, refreshReuseGraceSeconds)) return;
      await guarded(revokeGrant(record?.grantId));
      throw new errors.InvalidGrant(`${LABELS[this.model] ?? 'grant'} already used`);
    }

    async destroy(id: string): Promise<void> {
      if (this.model === 'Client') {
        await guarded(clients.deleteRegistered(id));
        return;
      }
      await guarded(oidc.destroy(this.model, storeKey(this.model, id)));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await guarded(oidc.revokeByGrantId(this.model, grantId));
    }
  };

  /**
   * After a rotation (oidc-provider keeps the rotated token as the `RotatedRefreshToken` entity of the
   * request), the new token becomes the rotated one's successor. The successor it replaces (an
   * earlier answer to the same token, within the grace period) is taken out of the store; had it
   * been used already, the client moved on and this is a stolen token coming back: revoke.
   */
  async function recordSuccessor(id: string): Promise<void> {
    const rotated = (Provider.ctx?.oidc?.entities as { RotatedRefreshToken?: { jti?: string } } | undefined)?.RotatedRefreshToken?.jti;
    if (typeof rotated !== 'string' || rotated === id) return;
    const successor = storeKey('RefreshToken', id);
    const previous = await oidc.swapSuccessor('RefreshToken', storeKey('RefreshToken', rotated), successor);
    if (previous === undefined || previous === successor) return;
    const replaced = await oidc.take('RefreshToken', previous);
    if (replaced?.consumed !== undefined) {
      await revokeGrant(replaced.grantId);
      throw new errors.InvalidGrant('refresh token already used');
    }
  }

  /**
   * What oidc-provider's own reuse detection does (lib/helpers/revoke.js): every token of the grant,
   * and the grant itself, so tokens issued to the winner of a race after this point are refused
   * too (they refer to a grant that no longer exists).
   */
  async function revokeGrant(grantId: unknown): Promise<void> {
    if (typeof grantId !== 'string' || grantId === '') return;
    await Promise.all(GRANT_MODELS.map((model) => oidc.revokeByGrantId(model, grantId)));
    await oidc.destroy('Grant', grantId);
    const ctx = Provider.ctx;
    if (ctx !== undefined) ctx.oidc.provider.emit('grant.revoked', ctx, grantId);
  }
}

/**
 * Records kept past their expiry, because oidc-provider reads them expired to answer precisely (it
 * checks `exp` itself): a device polling with an expired code must hear expired_token (RFC 8628
 * section 3.5), not "not found", and the person entering it "expired", not "wrong code".
 */
const AFTERLIFE_SECONDS: Record<string, number> = { DeviceCode: 600 };

/** The models oidc-provider issues under a grant. */
const GRANT_MODELS = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest'] as const;
const LABELS: Record<string, string> = {
  AuthorizationCode: 'authorization code',
  RefreshToken: 'refresh token',
  DeviceCode: 'device code',
  BackchannelAuthenticationRequest: 'backchannel authentication request',
};

/**
 * The store never holds a working bearer value (a token, a code, a session or interaction cookie):
 * records are keyed by the SHA-256 of the value (base64url), so a copy of the database file or
 * collection gives nothing to present. oidc-provider always looks records up by the value it was
 * given, so the digest is taken here, on every call. Clients are found by client_id and grants by
 * grant id, neither of which works as a credential (and both are looked up by other modules by
 * their plain ids), so those two stay as they are.
 */
const PLAIN_KEYED_MODELS = new Set(['Client', 'Grant']);

/** An id that is a store key already (a device code found by its user code); `~` is in no token value. */
const STORE_KEY_MARK = 'stored~';

export function storeKey(model: string, id: string): string {
  if (id.startsWith(STORE_KEY_MARK)) return id.slice(STORE_KEY_MARK.length);
  if (PLAIN_KEYED_MODELS.has(model)) return id;
  let digest = recentDigests.get(id);
  if (digest === undefined) {
    digest = createHash('sha256').update(id).digest('base64url');
    recentDigests.set(id, digest);
  }
  return digest;
}

/**
 * The digests of the last few values looked up: introspection without a token_type_hint looks the
 * same value up as an access token, a client-credentials token and a refresh token, and a rotation
 * reads and writes the same token more than once.
 */
const recentDigests = new BoundedMap<string, string>(64);

/**
 * A user code (RFC 8628) is a credential too: whoever types it in approves the device. Device codes
 * are found by a digest of the normalised user code (oidc-provider normalises it before it asks),
 * marked so that saving a record read back by its device code does not digest the digest.
 */
const USER_CODE_DIGEST = 'sha256:';

function userCodeKey(userCode: string): string {
  return userCode.startsWith(USER_CODE_DIGEST) ? userCode : `${USER_CODE_DIGEST}${createHash('sha256').update(userCode).digest('base64url')}`;
}

/**
 * The payload as stored: its `jti` is the value itself, so it becomes the key too (find puts the
 * value back, it knows it); an interaction remembers its session's cookie value, which becomes
 * that session's key (nothing reads it back; oidc-provider finds the session by its uid).
 */
function storedPayload(model: string, id: string, payload: AdapterPayload): AdapterPayload {
  if (PLAIN_KEYED_MODELS.has(model)) return payload;
  const stored: AdapterPayload = { ...payload };
  if (stored.jti === id) stored.jti = storeKey(model, id);
  if (typeof stored.userCode === 'string') stored.userCode = userCodeKey(stored.userCode);
  const session = stored.session as { cookie?: unknown } | undefined;
  if (session && typeof session === 'object' && typeof session.cookie === 'string') {
    stored.session = { ...session, cookie: storeKey('Session', session.cookie) };
  }
  return stored;
}

function withId(id: string, payload: OidcPayload | undefined): AdapterPayload | undefined {
  if (payload === undefined) return undefined;
  return (payload.jti === undefined ? payload : { ...payload, jti: id }) as AdapterPayload;
}

function withinGrace(consumedAt: unknown, graceSeconds: number): boolean {
  return graceSeconds > 0 && typeof consumedAt === 'number' && Date.now() / 1000 - consumedAt <= graceSeconds;
}
