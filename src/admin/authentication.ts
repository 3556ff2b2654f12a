/**
 * Who is calling the admin API. The caller shows an access token Tessera issued for the admin API's
 * built-in resource (resource.ts), and it is checked here, in process, with jose against Tessera's
 * own public signing keys (read from the store, not fetched over HTTP from ourselves): the
 * signature, `typ: at+jwt` (RFC 9068), the issuer, the audience, the expiry, and the `admin` scope.
 *
 * Two more checks than a resource server elsewhere would make, because this one can:
 * - a sender-constrained token must come with its proof: a certificate-bound one (`cnf.x5t#S256`,
 *   RFC 8705) over the connection presenting that certificate. DPoP-bound tokens (`cnf.jkt`) are
 *   refused: the admin API does not check DPoP proofs, and accepting one as a bearer token would
 *   throw away the binding its client asked for.
 * - the holder must still hold the `admin` role, right now: a person still enabled with the role, a
 *   machine client still registered with it. Taking the role away ends admin access at once, not
 *   when the token expires (JWT access tokens cannot be revoked).
 *
 * Refusals follow RFC 6750: 401 with `WWW-Authenticate: Bearer error="invalid_token"`, 403 with
 * `error="insufficient_scope"`. Refused tokens count against a per-address limit (429 beyond it).
 */
import type { Context } from 'koa';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';

import type { AccountService } from '../domain/accounts.ts';
import { thumbprint } from '../domain/certificates.ts';
import { AppError, isAppError, rateLimited } from '../errors.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import { presentedCertificate } from '../oidc/client-certificates.ts';
import { SIGNING_ALGORITHMS } from '../oidc/configuration.ts';
import type { KeyRepository, RevisionRepository } from '../store/port.ts';
import { ADMIN_ROLE, ADMIN_SCOPE, adminAudience } from './resource.ts';

/** Who made an admin request: a machine client acting for itself, or a person through an app. */
export interface AdminCaller {
  readonly kind: 'client' | 'person';
  /** The client the token was issued to. */
  readonly clientId: string;
  /** The person's account, for kind `person`. */
  readonly sub: string | undefined;
}

export interface AdminAuthenticationDependencies {
  issuer: string;
  keys: Pick<KeyRepository, 'list'>;
  revisions: Pick<RevisionRepository, 'get'>;
  accounts: Pick<AccountService, 'findBySub'>;
  /** A client's metadata (static or stored), or undefined when there is no such client. */
  clientMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
  rateLimits: Pick<RateLimits, 'adminBlockedFor' | 'adminFailure'>;
}

const REALM = 'tessera-admin';
/** Far above any access token Tessera issues; bounds what is parsed and verified. */
const MAX_TOKEN_LENGTH = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** Reread the keys at least this often even if the revision did not move (a retired key expiring). */
const KEY_SET_MAX_AGE_MS = 60_000;
const CLOCK_TOLERANCE_SECONDS = 5;

function invalidToken(description: string): AppError {
  return new AppError('ERR_INVALID_TOKEN', description, {
    headers: { 'WWW-Authenticate': `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"` },
  });
}

function insufficientScope(description: string): AppError {
  return new AppError('ERR_INSUFFICIENT_SCOPE', description, {
    headers: { 'WWW-Authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${ADMIN_SCOPE}", error_description="${description}"` },
  });
}

/** The token in `Authorization: Bearer ...`; a request without credentials gets the bare challenge (RFC 6750 section 3.1). */
function bearerToken(ctx: Context): string {
  const header = ctx.get('Authorization');
  if (!header) {
    throw new AppError('ERR_INVALID_TOKEN', 'Send an access token for the admin API: Authorization: Bearer TOKEN', {
      headers: { 'WWW-Authenticate': `Bearer realm="${REALM}", scope="${ADMIN_SCOPE}"` },
    });
  }
  const match = /^(\S+) +(\S+)$/.exec(header.trim());
  if (match?.[1]!.toLowerCase() === 'dpop') throw invalidToken('DPoP-bound tokens are not accepted by the admin API; use a bearer or certificate-bound token');
  if (!match || match[1]!.toLowerCase() !== 'bearer') throw invalidToken('The Authorization header must be Bearer TOKEN');
  const token = match[2]!;
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) throw invalidToken('The access token is not a signed JWT');
  return token;
}

function describeVerificationFailure(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'The access token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss': return 'The access token was issued by someone else';
      case 'aud': return 'The access token is not for the admin API';
      case 'typ': return 'The token is not an access token (typ at+jwt)';
      case 'nbf': case 'iat': return 'The access token is not valid yet';
      default: return 'The access token lacks a required claim';
    }
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'The access token was not signed with a key of this server';
  if (error instanceof joseErrors.JOSEAlgNotAllowed || error instanceof joseErrors.JOSENotSupported) return 'The access token is not signed with an accepted algorithm';
  return 'The access token\'s signature or format is not valid';
}

/** The current and retired public signing keys, reloaded when the keys revision moves (a rotation here or elsewhere). */
class VerificationKeys {
  readonly #keys: Pick<KeyRepository, 'list'>;
  readonly #revisions: Pick<RevisionRepository, 'get'>;
  #revision = Number.NaN;
  #loadedAt = 0;
  #set: JWTVerifyGetKey | undefined;

  constructor(keys: Pick<KeyRepository, 'list'>, revisions: Pick<RevisionRepository, 'get'>) {
    this.#keys = keys;
    this.#revisions = revisions;
  }

  async current(): Promise<JWTVerifyGetKey> {
    const revision = await this.#revisions.get('keys');
    if (!this.#set || revision !== this.#revision || Date.now() - this.#loadedAt > KEY_SET_MAX_AGE_MS) {
      const keys = (await this.#keys.list()).filter((key) => key.use === 'sig' && key.publicJwk).map((key) => key.publicJwk!);
      this.#set = createLocalJWKSet({ keys } as JSONWebKeySet);
      this.#revision = revision;
      this.#loadedAt = Date.now();
    }
    return this.#set;
  }
}

export class AdminAuthentication {
  readonly #deps: AdminAuthenticationDependencies;
  readonly #audience: string;
  readonly #keys: VerificationKeys;

  constructor(deps: AdminAuthenticationDependencies) {
    this.#deps = deps;
    this.#audience = adminAudience(deps.issuer);
    this.#keys = new VerificationKeys(deps.keys, deps.revisions);
  }

  /** Throws ERR_INVALID_TOKEN (401), ERR_INSUFFICIENT_SCOPE (403) or ERR_RATE_LIMITED (429); refused tokens count towards the per-address limit. */
  async authenticate(ctx: Context): Promise<AdminCaller> {
    const blockedMs = await this.#deps.rateLimits.adminBlockedFor(ctx);
    if (blockedMs) {
      throw rateLimited(blockedMs, 'Too many requests with a bad access token; retry after {seconds} seconds');
    }
    try {
      return await this.#check(ctx);
    } catch (error) {
      if (isAppError(error, 'ERR_INVALID_TOKEN')) await this.#deps.rateLimits.adminFailure(ctx);
      throw error;
    }
  }

  async #check(ctx: Context): Promise<AdminCaller> {
    const token = bearerToken(ctx);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.#keys.current(), {
        issuer: this.#deps.issuer,
        audience: this.#audience,
        typ: 'at+jwt',
        algorithms: SIGNING_ALGORITHMS,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      throw invalidToken(describeVerificationFailure(error));
    }
    this.#checkBinding(ctx, payload.cnf);
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (!scopes.includes(ADMIN_SCOPE)) throw insufficientScope(`The access token does not carry the ${ADMIN_SCOPE} scope`);
    const clientId = String(payload.client_id);
    const sub = String(payload.sub);
    // RFC 9068 section 2.2: a token a client got for itself names the client as its subject.
    return sub === clientId ? this.#machine(clientId) : this.#person(clientId, sub);
  }

  #checkBinding(ctx: Context, cnf: unknown): void {
    if (cnf === undefined) return;
    const confirmation = (cnf && typeof cnf === 'object' ? cnf : {}) as Record<string, unknown>;
    if ('jkt' in confirmation) throw invalidToken('DPoP-bound tokens are not accepted by the admin API; use a bearer or certificate-bound token');
    const expected = confirmation['x5t#S256'];
    if (typeof expected !== 'string' || Object.keys(confirmation).length !== 1) throw invalidToken('The access token is bound to a key the admin API cannot check');
    const presented = presentedCertificate(ctx);
    if (!presented || thumbprint(presented.certificate) !== expected) {
      throw invalidToken('The access token is bound to a client certificate that this request does not present');
    }
  }

  async #machine(clientId: string): Promise<AdminCaller> {
    const metadata = await this.#deps.clientMetadata(clientId);
    if (!metadata) throw invalidToken('The client this token was issued to no longer exists');
    const roles = Array.isArray(metadata.tessera_roles) ? metadata.tessera_roles : [];
    const allowed = (metadata.tessera_resources as Record<string, unknown> | undefined)?.[this.#audience];
    if (!roles.includes(ADMIN_ROLE) || !Array.isArray(allowed) || !allowed.includes(ADMIN_SCOPE)) {
      throw insufficientScope(`The client no longer holds the ${ADMIN_ROLE} role for the admin API`);
    }
    return { kind: 'client', clientId, sub: undefined };
  }

  async #person(clientId: string, sub: string): Promise<AdminCaller> {
    const account = await this.#deps.accounts.findBySub(sub);
    if (!account || account.disabled) throw invalidToken('The account this token was issued for is disabled or gone');
    if (!account.roles.includes(ADMIN_ROLE)) throw insufficientScope(`The account no longer holds the ${ADMIN_ROLE} role`);
    return { kind: 'person', clientId, sub };
  }
}
