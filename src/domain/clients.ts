/**
 * Relying-party clients: static ones from config/clients.json and ones created with the CLI and kept
 * in the store. Generated secrets carry 256 bits of entropy, are shown once, and are stored only as a
 * SHA-256 digest: with that much entropy a fast hash is as safe as a slow one, and checking a client's
 * credentials never costs a password-hashing round.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

import { AppError } from '../errors.ts';
import type { ClientRepository, RevisionRepository, StoredClient } from '../store/port.ts';
import { certificateJwk, parseCertificate, thumbprint, TLS_SUBJECT_METADATA, tlsSubjectProblem, type TlsSubject } from './certificates.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import { randomId } from './random.ts';
import { roleProblem } from './roles.ts';

const HASHED_SECRET_PREFIX = 'sha256$';

/** Whether a stored `client_secret` is a digest (every client's but a static one from a config file). */
export function isClientSecretDigest(value: unknown): boolean {
  return typeof value === 'string' && value.startsWith(HASHED_SECRET_PREFIX);
}

export function hashClientSecret(secret: string): string {
  // The one-shot hash: no Hash object per call (this runs at every secret-authenticated token request).
  return HASHED_SECRET_PREFIX + hash('sha256', secret, 'base64url');
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
  /** Authorization requests must be pushed first (RFC 9126). */
  requirePar?: boolean;
  /** Access tokens must be DPoP-bound (RFC 9449). */
  requireDpop?: boolean;
  /** One of the operator's own apps: may register people through POST /api/accounts. */
  firstParty?: boolean;
  /** Every sign-in to this app needs a second factor (`tessera_require_mfa`). */
  requireMfa?: boolean;
  /**
   * A native app (RFC 8252, `application_type: native`): public (no secret, PKCE alone), its
   * loopback redirect URIs match whatever port it listens on, and it may use a private-use scheme.
   */
  native?: boolean;
  /**
   * A device (TV, CLI, printer) that signs people in with the device authorization grant (RFC 8628)
   * instead of a redirect: no redirect URIs, grant types device_code and refresh_token.
   */
  device?: boolean;
  /** OIDC Back-Channel Logout: where Tessera posts a logout token when a session of this app ends. */
  backchannelLogoutUri?: string;
  /** Its logout tokens must name the session (`sid`); Tessera's always do. */
  backchannelLogoutSessionRequired?: boolean;
}

/** The grant type of RFC 8628, as clients register it. */
export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

/**
 * Whether client metadata would work, by the rules oidc-provider applies to it at every request:
 * the problem (`redirect_uris must only contain web uris`), or undefined. Passed in by the wiring
 * (oidc/client-metadata-check.ts), so a client that could never work is refused when it is created,
 * with the reason, and the domain still knows nothing of oidc-provider.
 */
/** What PATCH /clients/{client_id} may change on a relying party; absent fields stay as they are. */
export interface RelyingPartyChanges {
  name?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
}

export type ClientMetadataCheck = (metadata: Record<string, unknown>) => Promise<string | undefined>;

export const MACHINE_AUTH_METHODS = ['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt', 'client_secret_basic'] as const;
export type MachineAuthMethod = (typeof MACHINE_AUTH_METHODS)[number];

/** A service that gets tokens for itself with the client credentials grant. */
export interface NewMachineClient {
  name: string;
  auth: MachineAuthMethod;
  /** tls_client_auth: the subject DN or SANs its CA-issued certificates carry (several, for rotation). */
  tlsSubjects?: TlsSubject[];
  /** self_signed_tls_client_auth: PEM certificates it may present (several, for rotation). */
  certificates?: string[];
  /** private_key_jwt: its public keys, inline or by URL. */
  jwks?: { keys: Record<string, unknown>[] };
  jwksUri?: string;
  /** Allowed scopes per resource server audience. */
  resources: Record<string, string[]>;
  requireDpop?: boolean;
  /** Roles it holds: a scope a resource limits to roles is issued only to a holder of one. */
  roles?: string[];
}

/** Client metadata Tessera adds to oidc-provider's (registered as extraClientMetadata). */
export const TESSERA_CLIENT_METADATA = ['tessera_resources', 'tessera_tls_subjects', 'tessera_resource_server', 'tessera_roles', 'tessera_first_party', 'tessera_require_mfa', 'tessera_registered'] as const;

/**
 * When a self-registered client first got a token (epoch seconds), kept in the stored record only:
 * not client metadata oidc-provider knows, so a registrant can neither set nor see it.
 */
export const FIRST_USED_AT = 'tessera_first_used_at';

export type ResourceLookup = (audience: string) => Promise<{ scopes: string[] } | undefined>;

export interface CreatedClient {
  client_id: string;
  client_secret?: string;
}

export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}

/** RFC 8252 section 7.1: a private-use scheme is a reversed domain name the app's publisher owns (com.example.app). */
const REVERSE_DOMAIN_SCHEME = /^[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:$/;

/**
 * Redirect URIs must be absolute, without fragments; https, or http only on a loopback address
 * (RFC 8252 section 7.3; oidc-provider counts `localhost` as one too). Only a native app may use a
 * private-use scheme, and only one named after a reversed domain (com.example.app:/callback):
 * oidc-provider refuses any other scheme for a web client at every authorization request, and a
 * bare `myapp:` is what another app on the device would most easily claim. oidc-provider's rules
 * are checked on top of these (ClientMetadataCheck).
 */
export function redirectUriProblem(uri: string, native: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `${uri} is not an absolute URL`;
  }
  if (url.hash || uri.includes('#')) return `${uri} must not contain a fragment`;
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return isLoopback(url.hostname) ? undefined : `${uri} must use https (http is allowed only on a loopback address: 127.0.0.1, [::1] or localhost)`;
  const reverseDomain = REVERSE_DOMAIN_SCHEME.test(url.protocol);
  if (!native) {
    return reverseDomain
      ? `${uri} uses a private-use scheme, which only a native app may use (create it as one: --native, application_type native)`
      : `${uri} must use https`;
  }
  return reverseDomain ? undefined : `${uri} must use https, http on a loopback address, or a private-use scheme named after a reversed domain name (such as com.example.app:/callback)`;
}

/**
 * Addresses that are not on the public internet (RFC 6890 and friends): loopback, private,
 * link-local, CGNAT, unspecified, documentation, benchmarking, multicast and reserved ranges,
 * IPv6 unique-local and the IPv4-mapped forms of all of them.
 */
const SPECIAL_USE = (() => {
  const list = new BlockList();
  for (const [address, prefix] of [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
    ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ] as const) list.addSubnet(address, prefix, 'ipv4');
  for (const [address, prefix] of [
    ['::', 128], ['::1', 128], ['::ffff:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32],
    ['2002::', 16], ['3fff::', 20], ['5f00::', 16], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
  ] as const) list.addSubnet(address, prefix, 'ipv6');
  return list;
})();

/** True for `localhost` names (RFC 6761), `.local` (mDNS) and IP literals in a special-use range. */
export function isSpecialUseHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local')) return true;
  const family = isIP(host);
  if (!family) return false;
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host)?.[1];
    if (mapped) return true;
  }
  return SPECIAL_USE.check(host, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * A client's jwks_uri: https (or http on loopback outside production, as redirect URIs). In
 * production it must not name a loopback or other special-use address: Tessera would fetch it from
 * inside the operator's network (SSRF). oidc-provider also refuses to connect to such addresses
 * whatever the name resolves to; this says so at registration instead of at the first token request.
 */
export function jwksUriProblem(uri: string, production: boolean): string | undefined {
  const problem = redirectUriProblem(uri, false);
  if (problem) return problem;
  if (production && isSpecialUseHost(new URL(uri).hostname)) return `${uri} points at a loopback or private address, which is refused in production`;
  return undefined;
}

/** Where logout tokens go: like a jwks_uri, https (http only on loopback), never to a private address in production. */
export function backchannelLogoutUriProblem(uri: string, production: boolean): string | undefined {
  return jwksUriProblem(uri, production);
}

export interface ClientPolicy {
  /** NODE_ENV=production: refuse jwks_uri on loopback and special-use addresses. */
  production: boolean;
  /** oidc-provider's rules for client metadata; without it (unit use) only Tessera's own rules apply. */
  checkMetadata?: ClientMetadataCheck | undefined;
}

/** The metadata field a problem is about: oidc-provider's messages start with it (`redirect_uris must ...`). */
function fieldOf(problem: string): string {
  const first = /^([a-z][a-z0-9_]*) /.exec(problem)?.[1];
  return first && first.includes('_') ? first : 'metadata';
}

export class ClientService {
  readonly #clients: ClientRepository;
  readonly #revisions: RevisionRepository;
  readonly #static: Map<string, Record<string, unknown>>;
  #cache = new Map<string, Record<string, unknown> | undefined>();
  #cachedRevision = -1;

  readonly #findResource: ResourceLookup;
  readonly #events: SecurityEvents;
  readonly #policy: ClientPolicy;

  constructor(
    clients: ClientRepository,
    revisions: RevisionRepository,
    staticClients: readonly Record<string, unknown>[],
    findResource: ResourceLookup,
    events: SecurityEvents = NO_SECURITY_EVENTS,
    policy: ClientPolicy = { production: false },
  ) {
    this.#policy = policy;
    this.#clients = clients;
    this.#revisions = revisions;
    this.#static = new Map(staticClients.map((metadata) => [String(metadata.client_id), metadata]));
    this.#findResource = findResource;
    this.#events = events;
  }

  /** The bus this service announces on; resource servers (resources.ts) announce on the same one. */
  get events(): SecurityEvents {
    return this.#events;
  }

  #created(clientId: string, kind: 'relying_party' | 'machine' | 'resource_server', name: string): void {
    this.#events.emit({ type: 'client.created', clientId, details: { kind, name } });
  }

  /**
   * Refuses metadata oidc-provider would refuse at every request, with its reason, so what is
   * stored always works. Runs after Tessera's own rules, whose messages say more.
   */
  async #checkMetadata(metadata: Record<string, unknown>): Promise<void> {
    const problem = await this.#policy.checkMetadata?.(metadata);
    if (problem) throw new AppError('ERR_CLIENT_INVALID', problem, { fields: { [fieldOf(problem)]: problem } });
  }

  async createRelyingParty(input: NewRelyingParty): Promise<CreatedClient> {
    const native = Boolean(input.native);
    const fields: Record<string, string> = {};
    const problems: string[] = [];
    const refuse = (field: string, problem: string) => {
      problems.push(problem);
      fields[field] ??= problem;
    };
    if (!input.name.trim()) refuse('name', 'a name is required');
    if (!input.redirectUris.length && !input.device) refuse('redirect_uris', 'at least one redirect URI is required');
    if (input.device && input.redirectUris.length) refuse('redirect_uris', 'a device client has no redirect URIs');
    if (input.backchannelLogoutUri !== undefined) {
      const problem = backchannelLogoutUriProblem(input.backchannelLogoutUri, this.#policy.production);
      if (problem) refuse('backchannel_logout_uri', `back-channel logout URI: ${problem}`);
    }
    for (const [field, uris] of [['redirect_uris', input.redirectUris], ['post_logout_redirect_uris', input.postLogoutRedirectUris ?? []]] as const) {
      for (const uri of uris) {
        const problem = redirectUriProblem(uri, native);
        if (problem) refuse(field, problem);
      }
    }
    if (problems.length) throw new AppError('ERR_CLIENT_INVALID', problems.join('; '), { fields });

    const clientId = randomId(16);
    // RFC 8252 section 8.5: a native app cannot keep a secret, so it gets none.
    const secret = input.public || native ? undefined : randomId(32);
    const metadata: Record<string, unknown> = {
      client_id: clientId,
      client_name: input.name.trim(),
      ...(native && { application_type: 'native' }),
      redirect_uris: input.redirectUris,
      post_logout_redirect_uris: input.postLogoutRedirectUris ?? [],
      grant_types: input.device ? [DEVICE_CODE_GRANT_TYPE, 'refresh_token'] : ['authorization_code', 'refresh_token'],
      response_types: input.device ? [] : ['code'],
      ...(input.backchannelLogoutUri !== undefined && {
        backchannel_logout_uri: input.backchannelLogoutUri,
        backchannel_logout_session_required: Boolean(input.backchannelLogoutSessionRequired),
      }),
      token_endpoint_auth_method: secret ? 'client_secret_basic' : 'none',
      ...(secret && { client_secret: hashClientSecret(secret) }),
      ...(input.requirePar && { require_pushed_authorization_requests: true }),
      ...(input.requireDpop && { dpop_bound_access_tokens: true }),
      ...(input.firstParty && { tessera_first_party: true }),
      ...(input.requireMfa && { tessera_require_mfa: true }),
    };
    await this.#checkMetadata(metadata);
    await this.#clients.create({ clientId, metadata });
    this.#created(clientId, 'relying_party', input.name.trim());
    return { client_id: clientId, ...(secret && { client_secret: secret }) };
  }

  /** Validates everything first, so a refused client leaves nothing behind. */
  async createMachineClient(input: NewMachineClient): Promise<CreatedClient> {
    const problems: string[] = input.name.trim() ? [] : ['a name is required'];
    if (!MACHINE_AUTH_METHODS.includes(input.auth)) problems.push(`unknown authentication method ${input.auth}`);
    problems.push(...await this.#resourceProblems(input.resources));
    for (const role of input.roles ?? []) {
      const problem = roleProblem(role);
      if (problem) problems.push(problem);
    }
    const certificateAuthenticated = input.auth === 'tls_client_auth' || input.auth === 'self_signed_tls_client_auth';
    // oidc-provider allows one binding per client, and refuses such a client at every request.
    if (certificateAuthenticated && input.requireDpop) {
      problems.push(`the tokens of a ${input.auth} client are bound to its certificate (RFC 8705); they cannot be DPoP-bound as well (drop --require-dpop)`);
    }
    const credentials: Record<string, unknown> = {};
    switch (input.auth) {
      case 'tls_client_auth':
        if (!input.tlsSubjects?.length) problems.push('tls_client_auth needs a subject DN or SAN to match (--tls-subject-dn, --tls-san-dns, ...)');
        for (const subject of input.tlsSubjects ?? []) {
          const problem = tlsSubjectProblem(subject);
          if (problem) problems.push(problem);
        }
        if (input.tlsSubjects?.[0]) Object.assign(credentials, subjectMetadata(input.tlsSubjects));
        break;
      case 'self_signed_tls_client_auth':
        if (!input.certificates?.length) problems.push('self_signed_tls_client_auth needs a certificate (--cert PATH.pem)');
        try {
          credentials.jwks = { keys: (input.certificates ?? []).map((pem) => certificateJwk(parseCertificate(pem))) };
        } catch (error) {
          problems.push((error as Error).message);
        }
        break;
      case 'private_key_jwt':
        if (!input.jwks && !input.jwksUri) problems.push('private_key_jwt needs public keys (--jwks PATH.json or --jwks-uri URL)');
        if (input.jwks && (!Array.isArray(input.jwks.keys) || !input.jwks.keys.length || input.jwks.keys.some((key) => 'd' in key || 'k' in key))) {
          problems.push('the JWKS must be {"keys": [...]} with public keys only');
        }
        if (input.jwksUri) {
          const problem = jwksUriProblem(input.jwksUri, this.#policy.production);
          if (problem) problems.push(`JWKS URI: ${problem}`);
        }
        Object.assign(credentials, input.jwks ? { jwks: input.jwks } : { jwks_uri: input.jwksUri });
        break;
      case 'client_secret_basic':
        break;
    }
    if (problems.length) throw new AppError('ERR_CLIENT_INVALID', problems.join('; '));

    const clientId = randomId(16);
    const secret = input.auth === 'client_secret_basic' ? randomId(32) : undefined;
    const certificateBound = certificateAuthenticated;
    const metadata: Record<string, unknown> = {
      client_id: clientId,
      client_name: input.name.trim(),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: input.auth,
      ...credentials,
      ...(secret && { client_secret: hashClientSecret(secret) }),
      ...(certificateBound && { tls_client_certificate_bound_access_tokens: true }),
      ...(input.requireDpop && { dpop_bound_access_tokens: true }),
      tessera_resources: Object.fromEntries(Object.entries(input.resources).map(([audience, scopes]) => [audience, [...new Set(scopes)]])),
      ...(input.roles?.length && { tessera_roles: [...new Set(input.roles)].sort() }),
    };
    await this.#checkMetadata(metadata);
    await this.#clients.create({ clientId, metadata });
    this.#created(clientId, 'machine', input.name.trim());
    return { client_id: clientId, ...(secret && { client_secret: secret }) };
  }

  /** The client a resource server uses to introspect and revoke the tokens issued for it. */
  async createResourceServerClient(audience: string, name: string): Promise<CreatedClient> {
    const clientId = randomId(16);
    const secret = randomId(32);
    await this.#clients.create({
      clientId,
      metadata: {
        client_id: clientId,
        client_name: `${name} (resource server)`,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        client_secret: hashClientSecret(secret),
        tessera_resource_server: audience,
      },
    });
    this.#created(clientId, 'resource_server', `${name} (resource server)`);
    return { client_id: clientId, client_secret: secret };
  }

  /**
   * Changes a relying party's name and redirect URIs, by the rules its creation follows (Tessera's,
   * then oidc-provider's), so an edit cannot store a client that would fail at every request.
   * A list given replaces the old one.
   */
  async updateRelyingParty(clientId: string, changes: RelyingPartyChanges): Promise<void> {
    await this.#updateStored(clientId, (metadata) => {
      if (!isRelyingParty(metadata)) throw new AppError('ERR_CLIENT_INVALID', 'Only a relying party has redirect URIs', { fields: { redirect_uris: 'Not a relying party' } });
      const native = metadata.application_type === 'native';
      const fields: Record<string, string> = {};
      const problems: string[] = [];
      if (changes.name !== undefined && !changes.name.trim()) {
        problems.push('a name is required');
        fields.client_name = 'a name is required';
      }
      if (changes.redirectUris !== undefined && !changes.redirectUris.length) {
        problems.push('at least one redirect URI is required');
        fields.redirect_uris = 'at least one redirect URI is required';
      }
      for (const [field, uris] of [['redirect_uris', changes.redirectUris ?? []], ['post_logout_redirect_uris', changes.postLogoutRedirectUris ?? []]] as const) {
        for (const uri of uris) {
          const problem = redirectUriProblem(uri, native);
          if (!problem) continue;
          problems.push(problem);
          fields[field] ??= problem;
        }
      }
      if (problems.length) throw new AppError('ERR_CLIENT_INVALID', problems.join('; '), { fields });
      return {
        ...metadata,
        ...(changes.name !== undefined && { client_name: changes.name.trim() }),
        ...(changes.redirectUris !== undefined && { redirect_uris: [...new Set(changes.redirectUris)] }),
        ...(changes.postLogoutRedirectUris !== undefined && { post_logout_redirect_uris: [...new Set(changes.postLogoutRedirectUris)] }),
      };
    });
  }

  /**
   * Gives a client_secret client a new secret, returned this once (only its digest is kept). The old
   * one stops working at once: a leaked secret must not keep working through a grace period.
   */
  async rotateSecret(clientId: string): Promise<{ client_secret: string }> {
    const secret = randomId(32);
    await this.#updateStored(clientId, (metadata) => {
      const auth = metadata.token_endpoint_auth_method ?? 'client_secret_basic';
      if (auth !== 'client_secret_basic' && auth !== 'client_secret_post') {
        throw new AppError('ERR_CLIENT_INVALID', `This client authenticates with ${String(auth)}, not a client secret`);
      }
      return { ...metadata, client_secret: hashClientSecret(secret) };
    });
    return { client_secret: secret };
  }

  /** Adds a certificate (self_signed_tls_client_auth) so the client can rotate without downtime. */
  async addCertificate(clientId: string, pem: string): Promise<{ thumbprint: string }> {
    const certificate = parseCertificate(pem);
    const jwk = certificateJwk(certificate);
    await this.#updateStored(clientId, (metadata) => {
      if (metadata.token_endpoint_auth_method !== 'self_signed_tls_client_auth') {
        throw new AppError('ERR_CLIENT_INVALID', 'Certificates are registered only for self_signed_tls_client_auth clients; use --tls-subject-dn and friends for tls_client_auth');
      }
      const keys = ((metadata.jwks as { keys?: Record<string, unknown>[] } | undefined)?.keys ?? []);
      if (keys.some((key) => key.kid === jwk.kid)) throw new AppError('ERR_CLIENT_INVALID', 'That certificate is already registered');
      return { ...metadata, jwks: { keys: [...keys, jwk] } };
    });
    return { thumbprint: thumbprint(certificate) };
  }

  /** Removes a certificate by its x5t#S256 thumbprint; the last one cannot be removed. */
  async removeCertificate(clientId: string, certificateThumbprint: string): Promise<void> {
    await this.#updateStored(clientId, (metadata) => {
      const keys = ((metadata.jwks as { keys?: Record<string, unknown>[] } | undefined)?.keys ?? []);
      const remaining = keys.filter((key) => key.kid !== certificateThumbprint);
      if (remaining.length === keys.length) throw new AppError('ERR_NOT_FOUND', 'No certificate with that thumbprint is registered for this client');
      if (!remaining.length) throw new AppError('ERR_CLIENT_INVALID', 'That is the client\'s only certificate; add the new one first');
      return { ...metadata, jwks: { keys: remaining } };
    });
  }

  /** Adds a subject DN or SAN (tls_client_auth), e.g. for a certificate from a new CA or with a new name. */
  async addTlsSubject(clientId: string, subject: TlsSubject): Promise<void> {
    const problem = tlsSubjectProblem(subject);
    if (problem) throw new AppError('ERR_CLIENT_INVALID', problem);
    await this.#updateStored(clientId, (metadata) => {
      if (metadata.token_endpoint_auth_method !== 'tls_client_auth') {
        throw new AppError('ERR_CLIENT_INVALID', 'Subjects are registered only for tls_client_auth clients; use --cert for self_signed_tls_client_auth');
      }
      const subjects = (metadata.tessera_tls_subjects as TlsSubject[] | undefined) ?? [];
      if (subjects.some((known) => known.type === subject.type && known.value === subject.value)) throw new AppError('ERR_CLIENT_INVALID', 'That subject is already registered');
      return { ...withoutSubjectMetadata(metadata), ...subjectMetadata([...subjects, subject]) };
    });
  }

  async removeTlsSubject(clientId: string, subject: TlsSubject): Promise<void> {
    await this.#updateStored(clientId, (metadata) => {
      const subjects = (metadata.tessera_tls_subjects as TlsSubject[] | undefined) ?? [];
      const remaining = subjects.filter((known) => !(known.type === subject.type && known.value === subject.value));
      if (remaining.length === subjects.length) throw new AppError('ERR_NOT_FOUND', 'That subject is not registered for this client');
      if (!remaining.length) throw new AppError('ERR_CLIENT_INVALID', 'That is the client\'s only subject; add the new one first');
      return { ...withoutSubjectMetadata(metadata), ...subjectMetadata(remaining) };
    });
  }

  async #updateStored(clientId: string, change: (metadata: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    if (this.#static.has(clientId)) throw new AppError('ERR_CLIENT_INVALID', `${clientId} is configured in config/clients.json; change it there`);
    const stored = await this.#clients.find(clientId);
    if (!stored) throw new AppError('ERR_NOT_FOUND', `No client ${clientId}`);
    const metadata = change(stored.metadata);
    await this.#checkMetadata(metadata);
    await this.#clients.update(clientId, metadata);
    this.#events.emit({ type: 'client.changed', clientId, details: { fields: changedFields(stored.metadata, metadata) } });
  }

  async #resourceProblems(resources: Record<string, string[]>): Promise<string[]> {
    const problems: string[] = [];
    if (!Object.keys(resources).length) problems.push('at least one resource is required (--resource URI --scope S)');
    for (const [audience, scopes] of Object.entries(resources)) {
      const resource = await this.#findResource(audience);
      if (!resource) {
        problems.push(`no resource server ${audience}; create it first with "tessera resources create"`);
        continue;
      }
      if (!scopes.length) problems.push(`name the scopes the client may use at ${audience} (--scope)`);
      const unknown = scopes.filter((scope) => !resource.scopes.includes(scope));
      if (unknown.length) problems.push(`${audience} has no scope ${unknown.join(', ')}`);
    }
    return problems;
  }

  async list(): Promise<Array<{ client_id: string; client_name?: unknown; source: 'config' | 'store'; metadata: Record<string, unknown> }>> {
    const stored = await this.#clients.list();
    return [
      ...[...this.#static.values()].map((metadata) => ({ client_id: String(metadata.client_id), client_name: metadata.client_name, source: 'config' as const, metadata: redact(metadata) })),
      ...stored.map((client: StoredClient) => ({ client_id: client.clientId, client_name: client.metadata.client_name, source: 'store' as const, metadata: redact(client.metadata) })),
    ];
  }

  /**
   * Stores a client that registered itself (oidc-provider's registration and RFC 7592 update, through
   * the adapter): created the first time, replaced after. Its secret is kept as a digest like every
   * other client's (oidc-provider has already shown the registrant the plain one).
   */
  async saveRegistered(metadata: Record<string, unknown>): Promise<void> {
    const clientId = String(metadata.client_id);
    if (this.#static.has(clientId)) throw new AppError('ERR_CLIENT_INVALID', `${clientId} is configured in config/clients.json`);
    const secret = metadata.client_secret;
    const stored: Record<string, unknown> = { ...metadata, ...(typeof secret === 'string' && !secret.startsWith(HASHED_SECRET_PREFIX) && { client_secret: hashClientSecret(secret) }) };
    const existing = await this.#clients.find(clientId);
    this.#cache.delete(clientId);
    if (!existing) {
      await this.#clients.create({ clientId, metadata: stored });
      this.#events.emit({ type: 'client.created', clientId, details: { kind: 'registered', name: String(metadata.client_name ?? ''), registered: String(metadata.tessera_registered ?? 'dynamic') } });
      return;
    }
    if (existing.metadata.tessera_registered === undefined) throw new AppError('ERR_CLIENT_INVALID', `${clientId} was not registered dynamically`);
    if (existing.metadata[FIRST_USED_AT] !== undefined) stored[FIRST_USED_AT] = existing.metadata[FIRST_USED_AT];
    await this.#clients.update(clientId, stored);
    this.#events.emit({ type: 'client.changed', clientId, details: { fields: changedFields(existing.metadata, stored) } });
  }

  /** Removes a self-registered client (RFC 7592 delete); false when there is none by that id. */
  async deleteRegistered(clientId: string): Promise<boolean> {
    const existing = await this.#clients.find(clientId);
    if (!existing || existing.metadata.tessera_registered === undefined) return false;
    this.#cache.delete(clientId);
    return this.delete(clientId);
  }

  /** Notes a self-registered client's first token, once: the sweep keeps clients that were used. */
  async markUsed(clientId: string, now = new Date()): Promise<void> {
    const existing = await this.#clients.find(clientId);
    if (!existing || existing.metadata.tessera_registered === undefined || existing.metadata[FIRST_USED_AT] !== undefined) return;
    await this.#clients.update(clientId, { ...existing.metadata, [FIRST_USED_AT]: Math.floor(now.getTime() / 1000) });
  }

  /**
   * Deletes self-registered clients never used (no token issued) within `days` of registering:
   * registration is open to anyone, and what nobody uses should not pile up. Returns how many went.
   */
  async purgeUnusedRegistered(days: number, now = new Date()): Promise<number> {
    const cutoff = now.getTime() - days * 86_400_000;
    let removed = 0;
    for (const client of await this.#clients.list()) {
      if (client.metadata.tessera_registered === undefined || client.metadata[FIRST_USED_AT] !== undefined) continue;
      if (client.createdAt.getTime() > cutoff) continue;
      if (await this.#clients.delete(client.clientId)) {
        removed += 1;
        this.#cache.delete(client.clientId);
        this.#events.emit({ type: 'client.deleted', clientId: client.clientId, details: { reason: 'unused', days } });
      }
    }
    return removed;
  }

  /** Returns false when no stored client has that id (static clients are changed in config, not here). */
  async delete(clientId: string): Promise<boolean> {
    const deleted = await this.#clients.delete(clientId);
    if (deleted) this.#events.emit({ type: 'client.deleted', clientId });
    return deleted;
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

  /**
   * What findMetadata would answer, when that is already in memory and a client (no store read,
   * no promise); undefined otherwise, and then findMetadata is the way.
   */
  cachedMetadata(clientId: string): Record<string, unknown> | undefined {
    return this.#cache.get(clientId);
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

  /** Resource server audience -> the client_id of its introspection client (the first one, should there be several). */
  async introspectionClients(): Promise<Map<string, string>> {
    const byAudience = new Map<string, string>();
    for (const client of await this.list()) {
      const audience = client.metadata.tessera_resource_server;
      if (typeof audience === 'string' && !byAudience.has(audience)) byAudience.set(audience, client.client_id);
    }
    return byAudience;
  }

  /** The metadata of the client with this id in config/clients.json, if it is one of them. */
  staticClient(clientId: string): Record<string, unknown> | undefined {
    return this.#static.get(clientId);
  }
}

/** oidc-provider wants exactly one tls_client_auth_* property; the full list lives in tessera_tls_subjects. */
function subjectMetadata(subjects: TlsSubject[]): Record<string, unknown> {
  const [first] = subjects;
  return { [TLS_SUBJECT_METADATA[first!.type]]: first!.value, tessera_tls_subjects: subjects };
}

function withoutSubjectMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
  const stripped = { ...metadata };
  for (const property of Object.values(TLS_SUBJECT_METADATA)) delete stripped[property];
  return stripped;
}

/** The names of the metadata fields a change touched (names only: values may be secrets or keys). */
/** A client people sign in to (the code flow), as opposed to a machine or a resource server's client. */
function isRelyingParty(metadata: Record<string, unknown>): boolean {
  return Array.isArray(metadata.grant_types) && metadata.grant_types.includes('authorization_code') && metadata.tessera_resource_server === undefined;
}

function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((name) => JSON.stringify(before[name]) !== JSON.stringify(after[name])).sort();
}

function redact(metadata: Record<string, unknown>): Record<string, unknown> {
  const { client_secret: secret, ...rest } = metadata;
  return secret === undefined ? rest : { ...rest, client_secret: '(hidden)' };
}
