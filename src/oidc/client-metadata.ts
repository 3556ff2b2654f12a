/**
 * What several protocol features read from a client: its metadata, built once per Client, and the
 * scopes that belong to OpenID Connect rather than to an API.
 */
import type { ClientMetadata } from 'oidc-provider';

export { OIDC_SCOPES } from '../domain/scopes.ts';

export type ClientLike = { clientId: string; metadata(): ClientMetadata; clientAuthMethod?: string };

/**
 * oidc-provider's `client.metadata()` rebuilds the whole metadata object (every property, snake_cased)
 * on each call, and the token path asks it several times per request. A Client never changes once
 * built (a changed client is a new instance), so its metadata is built once; callers only read it.
 */
const metadataByClient = new WeakMap<object, ClientMetadata>();

export function metadataOf(client: ClientLike): ClientMetadata {
  let metadata = metadataByClient.get(client);
  if (!metadata) {
    metadata = client.metadata();
    metadataByClient.set(client, metadata);
  }
  return metadata;
}
