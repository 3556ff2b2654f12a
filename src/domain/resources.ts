/**
 * Resource servers (APIs) that Tessera issues access tokens for, by resource indicator (RFC 8707):
 * static ones from config/resources.json and ones created with the CLI. Each gets a client of its
 * own for introspection and revocation of the tokens issued for it.
 */
import { ACCESS_TOKEN_SIGNING_ALGS, ConfigError, type AccessTokenSigningAlg, type StaticResource } from '../config.ts';
import { AppError } from '../errors.ts';
import type { ResourceRepository, ResourceServerRecord, RevisionRepository } from '../store/port.ts';
import type { ClientService, CreatedClient } from './clients.ts';
import { scopeRolesProblems, type ScopeRoles } from './roles.ts';

export type ResourceServer = Omit<ResourceServerRecord, 'createdAt'>;

export interface NewResourceServer {
  audience: string;
  name?: string | undefined;
  scopes: string[];
  format?: 'jwt' | 'opaque' | undefined;
  ttlSeconds?: number | undefined;
  /** Scopes only holders of one of the listed roles may receive, e.g. `{ "orders:write": ["admin"] }`. */
  scopeRoles?: ScopeRoles | undefined;
  /** The only clients that may ask for it in the code flow; absent, any client may, with the person's consent. */
  clients?: string[] | undefined;
  /** The JWS algorithm of its JWT access tokens; RS256 when absent. */
  signingAlg?: AccessTokenSigningAlg | undefined;
}

export const DEFAULT_RESOURCE_TTL_SECONDS = 300;
export const MAX_RESOURCE_TTL_SECONDS = 86_400;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function resourceProblems(input: NewResourceServer): string[] {
  const problems: string[] = [];
  let url: URL | undefined;
  try {
    url = new URL(input.audience);
  } catch {
    problems.push(`${input.audience} is not an absolute URI`);
  }
  if (url && (url.hash || input.audience.includes('#'))) problems.push(`${input.audience} must not contain a fragment (RFC 8707)`);
  if (!input.scopes.length) problems.push('at least one scope is required');
  for (const scope of input.scopes) {
    if (!SCOPE_TOKEN.test(scope)) problems.push(`${JSON.stringify(scope)} is not a valid scope`);
    if (['openid', 'offline_access', 'profile', 'email', 'roles'].includes(scope)) problems.push(`${scope} is an OpenID Connect scope, not an API scope`);
  }
  problems.push(...scopeRolesProblems(input.scopes, input.scopeRoles));
  if (input.signingAlg !== undefined) {
    if (!(ACCESS_TOKEN_SIGNING_ALGS as readonly string[]).includes(input.signingAlg)) problems.push(`the signing algorithm must be one of ${ACCESS_TOKEN_SIGNING_ALGS.join(', ')}`);
    else if ((input.format ?? 'jwt') !== 'jwt') problems.push('a signing algorithm applies to JWT access tokens only');
  }
  const ttl = input.ttlSeconds ?? DEFAULT_RESOURCE_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_RESOURCE_TTL_SECONDS) problems.push(`the token lifetime must be between 1 and ${MAX_RESOURCE_TTL_SECONDS} seconds`);
  return problems;
}

export class ResourceService {
  readonly #resources: ResourceRepository;
  readonly #revisions: RevisionRepository;
  readonly #clients: ClientService;
  readonly #static: Map<string, ResourceServer>;
  /** Tessera's own APIs (the admin API): always there, never created, changed or deleted. */
  readonly #builtIn: Map<string, ResourceServer>;
  #cache = new Map<string, ResourceServer | undefined>();
  #cachedRevision = -1;

  constructor(resources: ResourceRepository, revisions: RevisionRepository, clients: ClientService, staticResources: readonly StaticResource[], builtIn: readonly StaticResource[] = []) {
    this.#resources = resources;
    this.#revisions = revisions;
    this.#clients = clients;
    const toServer = ({ scopeRoles, clients, ...resource }: StaticResource): [string, ResourceServer] => [resource.audience, {
      ...resource,
      scopes: [...resource.scopes],
      ...(clients?.length && { clients: [...clients] }),
      ...(scopeRoles && { scopeRoles: normalizeScopeRoles(scopeRoles) }),
    }];
    this.#builtIn = new Map(builtIn.map(toServer));
    const reserved = staticResources.filter((resource) => this.#builtIn.has(resource.audience));
    if (reserved.length) throw new ConfigError(reserved.map((resource) => `resources.json: ${resource.audience} is reserved for Tessera's own API`));
    this.#static = new Map(staticResources.map(toServer));
  }

  /**
   * Registers a resource server and creates its introspection client (shown once).
   * Nothing is written when the input is refused.
   */
  async create(input: NewResourceServer): Promise<ResourceServer & { client: CreatedClient }> {
    const problems = resourceProblems(input);
    if (this.#builtIn.has(input.audience)) problems.push(`${input.audience} is reserved for Tessera's own API`);
    if (this.#static.has(input.audience)) problems.push(`${input.audience} is already configured in config/resources.json`);
    for (const clientId of new Set(input.clients ?? [])) {
      if (!this.#clients.staticClient(clientId) && !(await this.#clients.findMetadata(clientId))) problems.push(`no client ${clientId}`);
    }
    if (problems.length) throw new AppError('ERR_RESOURCE_INVALID', problems.join('; '));
    const resource: ResourceServer = {
      audience: input.audience,
      ...(input.name && { name: input.name }),
      scopes: [...new Set(input.scopes)],
      format: input.format ?? 'jwt',
      ttlSeconds: input.ttlSeconds ?? DEFAULT_RESOURCE_TTL_SECONDS,
      ...(input.scopeRoles && Object.keys(input.scopeRoles).length && { scopeRoles: normalizeScopeRoles(input.scopeRoles) }),
      ...(input.clients?.length && { clients: [...new Set(input.clients)] }),
      ...(input.signingAlg && { signingAlg: input.signingAlg }),
    };
    await this.#resources.create(resource);
    try {
      const client = await this.#clients.createResourceServerClient(resource.audience, resource.name ?? resource.audience);
      this.#clients.events.emit({ type: 'resource.created', details: { audience: resource.audience, scopes: resource.scopes, format: resource.format } });
      return { ...resource, client };
    } catch (error) {
      await this.#resources.delete(resource.audience);
      throw error;
    }
  }

  /** Tessera's own APIs, which `list` leaves out: they are not the operator's to change. */
  builtIns(): ResourceServer[] {
    return [...this.#builtIn.values()];
  }

  async list(): Promise<Array<ResourceServer & { source: 'config' | 'store' }>> {
    const stored = await this.#resources.list();
    return [
      ...[...this.#static.values()].map((resource) => ({ ...resource, source: 'config' as const })),
      ...stored.map(({ createdAt: _createdAt, ...resource }) => ({ ...resource, source: 'store' as const })),
    ];
  }

  /**
   * Also deletes the resource server's own introspection client: left behind, it could still
   * introspect and revoke tokens for an audience that is gone (or a later one with the same URI).
   * Returns false when no stored resource has that audience.
   */
  async delete(audience: string): Promise<boolean> {
    if (this.#builtIn.has(audience)) return false;
    if (!(await this.#resources.delete(audience))) return false;
    for (const client of await this.#clients.list()) {
      if (client.source === 'store' && client.metadata.tessera_resource_server === audience) await this.#clients.delete(client.client_id);
    }
    this.#clients.events.emit({ type: 'resource.deleted', details: { audience } });
    return true;
  }

  /** Served from memory on the token path; dropped when the resources revision moves (see refresh). */
  async find(audience: string): Promise<ResourceServer | undefined> {
    const builtIn = this.#builtIn.get(audience);
    if (builtIn) return builtIn;
    const configured = this.#static.get(audience);
    if (configured) return configured;
    if (this.#cache.has(audience)) return this.#cache.get(audience);
    const record = await this.#resources.find(audience);
    const resource = record && (({ createdAt: _createdAt, ...rest }) => rest)(record);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(audience, resource);
    return resource;
  }

  async refresh(): Promise<void> {
    const revision = await this.#revisions.get('resources');
    if (revision !== this.#cachedRevision) {
      this.#cache = new Map();
      this.#cachedRevision = revision;
    }
  }
}

function normalizeScopeRoles(scopeRoles: Readonly<Record<string, readonly string[]>>): ScopeRoles {
  return Object.fromEntries(Object.entries(scopeRoles).map(([scope, roles]) => [scope, [...new Set(roles)].sort()]));
}
