/**
 * The one oidc-provider adapter, generic over model names, on top of whichever store is configured.
 * Two models get a little policy on the way through:
 * - Client reads come from the ClientService's in-memory cache (hot path: every token request);
 * - RefreshToken reads honour the reuse grace period: a token rotated moments ago is handed back
 *   as not yet consumed, so two concurrent refreshes both succeed instead of revoking the grant.
 * A store outage becomes TemporarilyUnavailable on the way out, so oidc-provider answers 503 rather than 500.
 */
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';

import type { ClientService } from '../domain/clients.ts';
import { isStoreUnavailable } from '../store/outage.ts';
import type { OidcStore } from '../store/port.ts';

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

async function guarded<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw isStoreUnavailable(error) ? new TemporarilyUnavailable(error) : error;
  }
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
      await guarded(oidc.upsert(this.model, id, payload, expiresIn > 0 ? expiresIn : undefined));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') {
        return (await guarded(clients.findMetadata(id))) as AdapterPayload | undefined;
      }
      const payload = (await guarded(oidc.find(this.model, id))) as AdapterPayload | undefined;
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
      return (await guarded(oidc.findByUserCode(this.model, userCode))) as AdapterPayload | undefined;
    }

    async consume(id: string): Promise<void> {
      await guarded(oidc.consume(this.model, id));
    }

    async destroy(id: string): Promise<void> {
      await guarded(oidc.destroy(this.model, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await guarded(oidc.revokeByGrantId(this.model, grantId));
    }
  };
}

function withinGrace(consumedAt: unknown, graceSeconds: number): boolean {
  return graceSeconds > 0 && typeof consumedAt === 'number' && Date.now() / 1000 - consumedAt <= graceSeconds;
}
