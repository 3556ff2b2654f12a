/**
 * Relying-party clients: static ones from config/clients.json and ones created with the CLI and kept
 * in the store. Generated secrets carry 256 bits of entropy, are shown once, and are stored only as a
 * SHA-256 digest: with that much entropy a fast hash is as safe as a slow one, and checking a client's
 * credentials never costs a password-hashing round.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import { AppError } from '../errors.ts';
import type { ClientRepository, RevisionRepository, StoredClient } from '../store/port.ts';
import { randomId } from './random.ts';

const HASHED_SECRET_PREFIX = 'sha256$';

export function hashClientSecret(secret: string): string {
  return HASHED_SECRET_PREFIX + createHash('sha256').update(secret).digest('base64url');
}

/** Compares a presented secret with a stored one (hashed, or plaintext from a static config file) in constant time. */
export function clientSecretMatches(stored: string, presented: string): boolean {
  const expected = stored.startsWith(HASHED_SECRET_PREFIX) ? stored : hashClientSecret(stored);
  const actual = hashClientSecret(presented);
  return timingSafeEqual(Buffer.from(expected), Buffer.from(actual));
}

export interface NewRelyingParty {
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  /** A public client (SPA, native app) has no secret and authenticates with PKCE alone. */
  public?: boolean;
}

export interface CreatedClient {
  client_id: string;
  client_secret?: string;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}

/**
 * Redirect URIs must be absolute, without fragments; https, or http only on loopback (RFC 8252);
 * a public native client may also use a private-use scheme such as com.example.app:/callback.
 */
export function redirectUriProblem(uri: string, isPublic: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `${uri} is not an absolute URL`;
  }
  if (url.hash || uri.includes('#')) return `${uri} must not contain a fragment`;
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return isLoopback(url.hostname) ? undefined : `${uri} must use https (http is allowed only on localhost)`;
  if (isPublic && /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol)) return undefined;
  return `${uri} must use https`;
}

export class ClientService {
  readonly #clients: ClientRepository;
  readonly #revisions: RevisionRepository;
  readonly #static: Map<string, Record<string, unknown>>;
  #cache = new Map<string, Record<string, unknown> | undefined>();
  #cachedRevision = -1;

  constructor(clients: ClientRepository, revisions: RevisionRepository, staticClients: readonly Record<string, unknown>[]) {
    this.#clients = clients;
    this.#revisions = revisions;
    this.#static = new Map(staticClients.map((metadata) => [String(metadata.client_id), metadata]));
  }

  async createRelyingParty(input: NewRelyingParty): Promise<CreatedClient> {
    const problems = [
      ...(input.name.trim() ? [] : ['a name is required']),
      ...(input.redirectUris.length ? [] : ['at least one redirect URI is required']),
      ...[...input.redirectUris, ...(input.postLogoutRedirectUris ?? [])]
        .map((uri) => redirectUriProblem(uri, Boolean(input.public)))
        .filter((problem): problem is string => Boolean(problem)),
    ];
    if (problems.length) throw new AppError('ERR_CLIENT_INVALID', problems.join('; '));

    const clientId = randomId(16);
    const secret = input.public ? undefined : randomId(32);
    await this.#clients.create({
      clientId,
      metadata: {
        client_id: clientId,
        client_name: input.name.trim(),
        redirect_uris: input.redirectUris,
        post_logout_redirect_uris: input.postLogoutRedirectUris ?? [],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: secret ? 'client_secret_basic' : 'none',
        ...(secret && { client_secret: hashClientSecret(secret) }),
      },
    });
    return { client_id: clientId, ...(secret && { client_secret: secret }) };
  }

  async list(): Promise<Array<{ client_id: string; client_name?: unknown; source: 'config' | 'store'; metadata: Record<string, unknown> }>> {
    const stored = await this.#clients.list();
    return [
      ...[...this.#static.values()].map((metadata) => ({ client_id: String(metadata.client_id), client_name: metadata.client_name, source: 'config' as const, metadata: redact(metadata) })),
      ...stored.map((client: StoredClient) => ({ client_id: client.clientId, client_name: client.metadata.client_name, source: 'store' as const, metadata: redact(client.metadata) })),
    ];
  }

  /** Returns false when no stored client has that id (static clients are changed in config, not here). */
  delete(clientId: string): Promise<boolean> {
    return this.#clients.delete(clientId);
  }

  /**
   * Metadata for oidc-provider's Client adapter. Served from memory; the cache (hits and misses)
   * is dropped whenever the clients revision moves, which `refresh()` checks.
   */
  async findMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    if (this.#cache.has(clientId)) return this.#cache.get(clientId);
    const client = await this.#clients.find(clientId);
    // Bound the miss cache: unknown ids come from the outside and must not grow memory without limit.
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(clientId, client?.metadata);
    return client?.metadata;
  }

  /** Drops the cache if another process changed clients since the last look. Cheap: one counter read. */
  async refresh(): Promise<void> {
    const revision = await this.#revisions.get('clients');
    if (revision !== this.#cachedRevision) {
      this.#cache = new Map();
      this.#cachedRevision = revision;
    }
  }

  staticClients(): Record<string, unknown>[] {
    return [...this.#static.values()];
  }
}

function redact(metadata: Record<string, unknown>): Record<string, unknown> {
  const { client_secret: secret, ...rest } = metadata;
  return secret === undefined ? rest : { ...rest, client_secret: '(hidden)' };
}
