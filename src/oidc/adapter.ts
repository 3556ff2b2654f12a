/**
 * The one oidc-provider adapter, generic over model names, on top of whichever store is configured.
 * Two models get a little policy on the way through:
 * - Client reads come from the ClientService's in-memory cache (hot path: every token request);
 * - RefreshToken reads honour the reuse grace period: a token rotated moments ago is handed back
 *   as not yet consumed, so two concurrent refreshes both succeed instead of revoking the grant.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';

import type { ClientService } from '../domain/clients.ts';
import type { OidcStore } from '../store/port.ts';

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
      await oidc.upsert(this.model, id, payload, expiresIn > 0 ? expiresIn : undefined);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') {
        return (await clients.findMetadata(id)) as AdapterPayload | undefined;
      }
      const payload = (await oidc.find(this.model, id)) as AdapterPayload | undefined;
      if (this.model === 'RefreshToken' && payload?.consumed && withinGrace(payload.consumed, refreshReuseGraceSeconds)) {
        const { consumed: _consumed, ...fresh } = payload;
        return fresh;
      }
      return payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return (await oidc.findByUid(this.model, uid)) as AdapterPayload | undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return (await oidc.findByUserCode(this.model, userCode)) as AdapterPayload | undefined;
    }

    async consume(id: string): Promise<void> {
      await oidc.consume(this.model, id);
    }

    async destroy(id: string): Promise<void> {
      await oidc.destroy(this.model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await oidc.revokeByGrantId(this.model, grantId);
    }
  };
}

function withinGrace(consumedAt: unknown, graceSeconds: number): boolean {
  return graceSeconds > 0 && typeof consumedAt === 'number' && Date.now() / 1000 - consumedAt <= graceSeconds;
}
