/**
 * Upstream identity providers: Google, Microsoft, GitLab or any OpenID provider, and GitHub's
 * OAuth 2.0 without ID tokens. Static ones come from CONFIG_DIR/upstreams.json, the rest are
 * created with the CLI or the admin API and kept in the store, their client secrets sealed with
 * TESSERA_SECRET (sealed.ts) and never shown again. Running servers notice store changes within
 * STORE_POLL_SECONDS through the `upstreams` revision.
 */
import { ConfigError, type StaticUpstream } from '../config.ts';
import { AppError } from '../errors.ts';
import type { RevisionRepository, StoredUpstream, UpstreamRepository } from '../store/port.ts';
import { isLoopback } from './clients.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import { Sealer } from './sealed.ts';

export const UPSTREAM_PRESETS = ['google', 'microsoft', 'github', 'gitlab'] as const;
export type UpstreamPreset = (typeof UPSTREAM_PRESETS)[number];

/** `oidc`: discovery, ID tokens. `github`: OAuth 2.0, the profile and verified emails from GitHub's API. */
export type UpstreamKind = 'oidc' | 'github';

/** What Tessera keeps about an upstream, apart from its client secret. */
export interface UpstreamSettings {
  name: string;
  kind: UpstreamKind;
  /** OpenID providers: the issuer, whose discovery document gives the endpoints and JWKS. */
  issuer?: string;
  /** GitHub-shaped providers: where people authorize, where codes become tokens, the profile and its emails. */
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  userEndpoint?: string;
  emailsEndpoint?: string;
  clientId: string;
  scopes: string[];
  /** Whether this upstream's `email_verified` is believed (and so links to an existing account with that email). */
  trustEmail: boolean;
  preset?: UpstreamPreset;
}

export interface Upstream extends UpstreamSettings {
  id: string;
  source: 'config' | 'store';
}

/** An upstream with its secret, for the round trip only: never logged, listed or returned by an API. */
export interface UpstreamWithSecret extends Upstream {
  clientSecret: string;
}

export interface NewUpstream {
  id: string;
  name?: string | undefined;
  preset?: string | undefined;
  issuer?: string | undefined;
  clientId: string;
  clientSecret: string;
  scopes?: readonly string[] | undefined;
  trustEmail?: boolean | undefined;
  authorizationEndpoint?: string | undefined;
  tokenEndpoint?: string | undefined;
  userEndpoint?: string | undefined;
  emailsEndpoint?: string | undefined;
}

type PresetDefaults = Omit<UpstreamSettings, 'clientId' | 'trustEmail' | 'preset'>;

/**
 * What each preset needs. Microsoft's `common` issuer is multi-tenant: its discovery document names
 * `https://login.microsoftonline.com/{tenantid}/v2.0`, and openid-client checks each ID token's
 * `iss` against that template filled with the token's own `tid`.
 */
export const PRESETS: Readonly<Record<UpstreamPreset, PresetDefaults>> = {
  google: { name: 'Google', kind: 'oidc', issuer: 'https://accounts.google.com', scopes: ['openid', 'email', 'profile'] },
  microsoft: { name: 'Microsoft', kind: 'oidc', issuer: 'https://login.microsoftonline.com/common/v2.0', scopes: ['openid', 'email', 'profile'] },
  gitlab: { name: 'GitLab', kind: 'oidc', issuer: 'https://gitlab.com', scopes: ['openid', 'email', 'profile'] },
  github: {
    name: 'GitHub',
    kind: 'github',
    authorizationEndpoint: 'https://github.com/login/oauth/authorize',
    tokenEndpoint: 'https://github.com/login/oauth/access_token',
    userEndpoint: 'https://api.github.com/user',
    emailsEndpoint: 'https://api.github.com/user/emails',
    scopes: ['read:user', 'user:email'],
  },
};

/** Authorization parameters that send a person straight to one upstream, as Keycloak's kc_idp_hint does (that name is accepted too). */
export const UPSTREAM_HINT_PARAMETERS = ['upstream_hint', 'kc_idp_hint'] as const;

/** Lower-case letters, digits and dashes: it is part of the callback path people register at the upstream. */
const ID = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const ENDPOINTS = ['authorizationEndpoint', 'tokenEndpoint', 'userEndpoint', 'emailsEndpoint'] as const;

/** The path an upstream sends people back to: one per upstream, so a response can never be taken for another's (mix-up). */
export function callbackPath(id: string): string {
  return `/federation/${id}/callback`;
}

/**
 * Checks an upstream and fills in its preset. In production every URL must be https; otherwise
 * http is accepted on loopback too, for development and tests. Returns the settings or the problems.
 */
export function upstreamSettings(input: Omit<NewUpstream, 'clientSecret'>, production: boolean): { settings?: UpstreamSettings; problems: string[] } {
  const problems: string[] = [];
  if (typeof input.id !== 'string' || !ID.test(input.id)) problems.push('the id must be 1 to 40 lower-case letters, digits or dashes (it becomes part of the callback path)');
  let preset: PresetDefaults | undefined;
  if (input.preset !== undefined) {
    if (!(UPSTREAM_PRESETS as readonly string[]).includes(input.preset)) problems.push(`the preset must be one of ${UPSTREAM_PRESETS.join(', ')}, not ${JSON.stringify(input.preset)}`);
    else preset = PRESETS[input.preset as UpstreamPreset];
  }
  const kind: UpstreamKind = preset?.kind ?? (input.authorizationEndpoint !== undefined && input.issuer === undefined ? 'github' : 'oidc');
  const settings: UpstreamSettings = {
    name: (input.name ?? preset?.name ?? input.id ?? '').trim(),
    kind,
    clientId: input.clientId,
    scopes: [...new Set(input.scopes?.length ? input.scopes : preset?.scopes ?? ['openid', 'email', 'profile'])],
    trustEmail: input.trustEmail === true,
    ...(input.preset !== undefined && preset && { preset: input.preset as UpstreamPreset }),
  };
  if (kind === 'oidc') {
    const issuer = input.issuer ?? preset?.issuer;
    if (issuer === undefined) problems.push('an issuer (or a preset) is required');
    else settings.issuer = issuer.replace(/\/+$/, '');
    for (const endpoint of ENDPOINTS) if (input[endpoint] !== undefined) problems.push(`${endpoint} is only for GitHub-shaped (OAuth 2.0) upstreams; OpenID providers publish theirs in discovery`);
    if (!settings.scopes.includes('openid')) problems.push('the scopes of an OpenID provider must include openid');
  } else {
    if (input.issuer !== undefined) problems.push('a GitHub-shaped upstream has no issuer; give its endpoints instead');
    for (const endpoint of ENDPOINTS) {
      const value = input[endpoint] ?? preset?.[endpoint];
      if (value === undefined) problems.push(`${endpoint} is required for a GitHub-shaped upstream`);
      else settings[endpoint] = value;
    }
  }
  if (!settings.name || settings.name.length > 60) problems.push('the name must be 1 to 60 characters');
  if (typeof input.clientId !== 'string' || !input.clientId || input.clientId.length > 512) problems.push('a client id (from the upstream) is required');
  for (const scope of settings.scopes) if (!SCOPE_TOKEN.test(scope)) problems.push(`${JSON.stringify(scope)} is not a valid scope`);
  for (const [label, url] of [['issuer', settings.issuer], ...ENDPOINTS.map((endpoint) => [endpoint, settings[endpoint]])] as const) {
    if (url !== undefined) {
      const problem = urlProblem(url, production);
      if (problem) problems.push(`${label}: ${problem}`);
    }
  }
  return problems.length ? { problems } : { settings, problems };
}

function urlProblem(value: string, production: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${value} is not an absolute URL`;
  }
  if (url.search || url.hash || value.includes('#')) return `${value} must not have a query or fragment`;
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && !production && isLoopback(url.hostname)) return undefined;
  return production ? `${value} must use https in production` : `${value} must use https (http only on loopback outside production)`;
}

export interface UpstreamServiceOptions {
  repository: UpstreamRepository;
  revisions: RevisionRepository;
  /** From CONFIG_DIR/upstreams.json (config.ts checked the file's shape; the rules are checked here, and stop startup). */
  staticUpstreams: readonly StaticUpstream[];
  masterSecret: string;
  issuer: string;
  production: boolean;
  /** How long a running server trusts its cached list before asking the revision again. */
  pollSeconds: number;
  events?: SecurityEvents;
  clock?: () => number;
}

export class UpstreamService {
  readonly #repository: UpstreamRepository;
  readonly #revisions: RevisionRepository;
  readonly #static: Map<string, UpstreamWithSecret>;
  readonly #sealer: Sealer;
  readonly #issuer: string;
  readonly #production: boolean;
  readonly #pollMs: number;
  readonly #events: SecurityEvents;
  readonly #clock: () => number;
  #cache: { checkedAt: number; revision: number; stored: StoredUpstream[] } | undefined;

  constructor(options: UpstreamServiceOptions) {
    this.#repository = options.repository;
    this.#revisions = options.revisions;
    const problems: string[] = [];
    this.#static = new Map();
    for (const upstream of options.staticUpstreams) {
      const checked = upstreamSettings(upstream, options.production);
      problems.push(...checked.problems.map((problem) => `upstreams.json: ${upstream.id}: ${problem}`));
      if (this.#static.has(upstream.id)) problems.push(`upstreams.json: ${upstream.id}: the id is used twice`);
      if (checked.settings) this.#static.set(upstream.id, { id: upstream.id, ...checked.settings, source: 'config', clientSecret: upstream.clientSecret });
    }
    if (problems.length) throw new ConfigError(problems);
    this.#sealer = new Sealer(options.masterSecret, 'upstream client secret');
    this.#issuer = options.issuer;
    this.#production = options.production;
    this.#pollMs = options.pollSeconds * 1000;
    this.#events = options.events ?? NO_SECURITY_EVENTS;
    this.#clock = options.clock ?? Date.now;
  }

  /** The URI to register at the upstream as the redirect (callback) URI. */
  redirectUri(id: string): string {
    return `${this.#issuer}${callbackPath(id)}`;
  }

  /** Validates, seals the secret and stores. Throws ERR_UPSTREAM_INVALID with every problem at once; nothing is written then. */
  async create(input: NewUpstream): Promise<{ upstream: Upstream; redirectUri: string }> {
    const { settings, problems } = upstreamSettings(input, this.#production);
    if (typeof input.clientSecret !== 'string' || !input.clientSecret || input.clientSecret.length > 4096) problems.push('a client secret (from the upstream) is required');
    if (this.#static.has(input.id)) problems.push(`${input.id} is configured in upstreams.json; change it there`);
    if (!settings || problems.length) throw new AppError('ERR_UPSTREAM_INVALID', problems.join('; '));
    await this.#repository.create({ id: input.id, settings: { ...settings }, encryptedClientSecret: this.#sealer.seal(input.clientSecret, input.id) });
    this.#cache = undefined;
    this.#events.emit({ type: 'upstream.created', details: { upstream: input.id, kind: settings.kind, trust_email: settings.trustEmail } });
    return { upstream: { id: input.id, ...settings, source: 'store' }, redirectUri: this.redirectUri(input.id) };
  }

  /** Static upstreams first, then stored ones oldest first. Never holds a secret. */
  async list(): Promise<Upstream[]> {
    const stored = await this.#stored();
    return [
      ...[...this.#static.values()].map(withoutSecret),
      ...stored.map((record) => ({ id: record.id, ...(record.settings as unknown as UpstreamSettings), source: 'store' as const })),
    ];
  }

  async find(id: string): Promise<Upstream | undefined> {
    const found = await this.withSecret(id);
    return found && withoutSecret(found);
  }

  /** For the round trip: the upstream and its opened client secret. Undefined once it is deleted. */
  async withSecret(id: string): Promise<UpstreamWithSecret | undefined> {
    const configured = this.#static.get(id);
    if (configured) return configured;
    const record = (await this.#stored()).find((upstream) => upstream.id === id);
    if (!record) return undefined;
    return { id, ...(record.settings as unknown as UpstreamSettings), source: 'store', clientSecret: this.#sealer.open(record.encryptedClientSecret, id) };
  }

  /** Returns false when no stored upstream has that id (static ones are removed from upstreams.json). */
  async delete(id: string): Promise<boolean> {
    if (!(await this.#repository.delete(id))) return false;
    this.#cache = undefined;
    this.#events.emit({ type: 'upstream.deleted', details: { upstream: id } });
    return true;
  }

  isStatic(id: string): boolean {
    return this.#static.has(id);
  }

  /** The stored list, read again when the `upstreams` revision moved; the revision is asked at most once per poll interval. */
  async #stored(): Promise<StoredUpstream[]> {
    const now = this.#clock();
    if (this.#cache && now - this.#cache.checkedAt < this.#pollMs) return this.#cache.stored;
    const revision = await this.#revisions.get('upstreams');
    if (this.#cache && this.#cache.revision === revision) {
      this.#cache.checkedAt = now;
      return this.#cache.stored;
    }
    const stored = await this.#repository.list();
    this.#cache = { checkedAt: now, revision, stored };
    return stored;
  }
}

function withoutSecret({ clientSecret: _secret, ...upstream }: UpstreamWithSecret): Upstream {
  return upstream;
}
