/**
 * Dynamic client registration (RFC 7591) and its management (RFC 7592), as one slice:
 * DYNAMIC_CLIENT_REGISTRATION=off (no registration_endpoint in discovery, 404 at /reg), `token`
 * (an initial access token from `tessera registration-tokens create`), or `open`.
 *
 * - oidc-provider's configuration for it (`registrationFeatures`);
 * - the policy every self-registered client meets, in both modes (domain/registered-clients.ts),
 *   applied where oidc-provider validates client metadata (`checkSelfRegistered`): it runs for a
 *   registration, an RFC 7592 update and a metadata document alike, with or without a token;
 * - the per-address rate limit in front of POST /reg (`limitClientRegistrations`);
 * - an initial access token's number of uses, counted atomically in the store;
 * - first use, noted so that clients nobody uses are swept after DYNAMIC_CLIENT_REGISTRATION_UNUSED_DAYS.
 * The clients themselves are stored with every other client (oidc/adapter.ts, domain/clients.ts).
 */
import type { Context, Middleware, Next } from 'koa';
import type { Configuration, KoaContextWithOIDC, Provider } from 'oidc-provider';
import { errors } from 'oidc-provider';

import type { Config, SelfRegistrationConfig } from '../../config.ts';
import { isClientSecretDigest, type ClientService } from '../../domain/clients.ts';
import { randomId } from '../../domain/random.ts';
import { OIDC_SCOPES } from '../../domain/scopes.ts';
import { TOKEN_USES_FIELD, TOKEN_USES_POLICY } from '../../domain/registration-tokens.ts';
import { REGISTERED_METADATA, selfRegistrationProblems, type RegisteredKind } from '../../domain/registered-clients.ts';
import { isAppError } from '../../errors.ts';
import type { RateLimits } from '../../http/rate-limit.ts';
import type { Logger } from '../../log.ts';
import { storeKey } from '../adapter.ts';
import type { FeatureDependencies, Slice } from './feature.ts';

export const REGISTRATION_PATH = '/reg';


/** The routes oidc-provider gives these endpoints (ctx.oidc.route). */
const REGISTRATION_ROUTES = new Set(['registration', 'client_update']);

type Features = NonNullable<Configuration['features']>;

function registrationFeatures({ config, countTokenUse }: Pick<FeatureDependencies, 'config' | 'countTokenUse'>): Pick<Features, 'registration' | 'registrationManagement'> {
  const { mode } = config.selfRegistration;
  if (mode === 'off') return { registration: { enabled: false }, registrationManagement: { enabled: false } };
  return {
    registration: {
      enabled: true,
      initialAccessToken: mode === 'token',
      // oidc-provider accepts policies only with initial access tokens kept in the adapter.
      ...(mode === 'token' && { policies: {
        async [TOKEN_USES_POLICY](ctx) {
          const token = (ctx.oidc.entities as { InitialAccessToken?: { jti: string; exp?: number } & Record<string, unknown> }).InitialAccessToken;
          const uses = token?.[TOKEN_USES_FIELD];
          if (!token || typeof uses !== 'number' || !countTokenUse) return;
          const seconds = Math.max(1, (token.exp ?? 0) - Math.floor(Date.now() / 1000));
          if (!(await countTokenUse(storeKey('InitialAccessToken', token.jti), uses, seconds))) {
            throw new errors.InvalidToken('initial access token has no uses left');
          }
        },
      } }),
      idFactory: () => randomId(16),
      secretFactory: () => randomId(32),
      issueRegistrationAccessToken: true,
    },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
  };
}

export const dynamicClientRegistration: Slice = {
  name: 'dynamic client registration',
  // Not on the fast path: POST /reg passes the per-address limit (limitClientRegistrations) first.
  paths: [{ path: REGISTRATION_PATH, fastPath: false }, { path: `${REGISTRATION_PATH}/:clientId`, fastPath: false }],
  configure: (deps) => ({ features: registrationFeatures(deps) }),
};

/**
 * Called by the extraClientMetadata validator for `tessera_registered`, with the whole metadata:
 * marks a client that came by itself and refuses what the policy refuses (invalid_client_metadata,
 * 400). `kind` is undefined for the operator's own clients, which this leaves alone.
 */
export function checkSelfRegistered(metadata: Record<string, unknown>, kind: RegisteredKind | undefined, policy: SelfRegistrationConfig, sent?: Record<string, unknown>): void {
  if (!kind) return;
  const problems = selfRegistrationProblems({ ...metadata, [REGISTERED_METADATA]: undefined }, policy);
  if (problems.length) throw new errors.InvalidClientMetadata(problems.join('; '));
  metadata[REGISTERED_METADATA] = kind;
  // Tessera's clientDefaults require auth_time, and oidc-provider then refuses every request without
  // `openid`: an OAuth-only agent (an MCP client asks for its server's scopes alone) could never
  // sign anyone in. So a client that came by itself requires it only when it asked to, or when it
  // named `openid` among its scopes.
  const asked = sent && 'require_auth_time' in sent;
  if (!asked && !(typeof metadata.scope === 'string' && metadata.scope.split(' ').includes('openid'))) metadata.require_auth_time = false;
  // A client's `scope` limits the OpenID Connect scopes it may ask for; oidc-provider accepts only
  // those there. An API's scopes (which MCP clients register with) are the API's to give, checked
  // at every request by the resource-indicators slice, so they are left out of the metadata; a
  // client left with no OpenID Connect scope of its own gets the allowed list, never no limit.
  const personScopes = typeof metadata.scope === 'string' ? metadata.scope.split(' ').filter((scope) => OIDC_SCOPES.has(scope)) : [];
  metadata.scope = (personScopes.length ? personScopes : policy.scopes.filter((scope) => OIDC_SCOPES.has(scope))).join(' ');
}

/** Whether oidc-provider is handling a registration or an RFC 7592 update right now. */
export function registering(ctx: KoaContextWithOIDC | undefined): boolean {
  return REGISTRATION_ROUTES.has(String(ctx?.oidc?.route));
}

/**
 * In front of the registration endpoints:
 * - every POST /reg counts against RATE_LIMIT_CLIENT_REGISTRATION_PER_IP before oidc-provider sees
 *   it (registration is open to anyone in `open` mode); over the limit, 429 in OAuth's JSON shape;
 * - RFC 7592 reads and updates answer with the client's metadata, whose `client_secret` is the
 *   stored digest (domain/clients.ts): it is left out, as it is no secret the client could use.
 */
export function limitClientRegistrations(config: Config, rateLimits: RateLimits): Middleware {
  const enabled = config.selfRegistration.mode !== 'off';
  return async function registrationEndpoints(ctx: Context, next: Next) {
    if (!enabled || !(ctx.path === REGISTRATION_PATH || ctx.path.startsWith(`${REGISTRATION_PATH}/`))) return next();
    if (ctx.method === 'POST' && ctx.path === REGISTRATION_PATH) {
      try {
        await rateLimits.clientRegistration(ctx);
      } catch (error) {
        if (!isAppError(error, 'ERR_RATE_LIMITED')) throw error;
        const seconds = error.retryAfterSeconds ?? 1;
        ctx.status = 429;
        ctx.set('Retry-After', String(seconds));
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'invalid_request', error_description: `too many client registrations; retry after ${seconds} seconds` };
        return;
      }
    }
    await next();
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.path !== REGISTRATION_PATH && body && typeof body === 'object' && isClientSecretDigest(body.client_secret)) {
      const { client_secret: _digest, ...rest } = body;
      ctx.body = rest;
    }
  };
}

/**
 * A self-registered client's first token is noted once, so the sweep keeps it. (oidc-provider's
 * Client carries extra metadata under its snake_case name; this runs at every token response, so
 * it is a property read and a set lookup.)
 */
export function noteFirstUse(provider: Provider, clients: ClientService, logger: Logger): void {
  const noted = new Set<string>();
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client;
    if (!client || noted.has(client.clientId) || (client as unknown as Record<string, unknown>)[REGISTERED_METADATA] !== 'dynamic') return;
    noted.add(client.clientId);
    clients.markUsed(client.clientId).catch((error: unknown) => {
      noted.delete(client.clientId);
      logger.error({ err: error, clientId: client.clientId }, 'could not note a registered client\'s first use');
    });
  });
}

const SWEEP_MS = 3_600_000;

/** Removes unused self-registered clients at start and hourly; returns a stop function. */
export function sweepUnusedClients(config: Config, clients: ClientService, logger: Logger): () => void {
  if (config.selfRegistration.mode === 'off') return () => {};
  const sweep = () => {
    clients.purgeUnusedRegistered(config.selfRegistration.unusedDays).then(
      (removed) => removed && logger.info({ removed, days: config.selfRegistration.unusedDays }, 'removed registered clients that were never used'),
      (error: unknown) => logger.error({ err: error }, 'could not remove unused registered clients'),
    );
  };
  sweep();
  const timer = setInterval(sweep, SWEEP_MS);
  timer.unref();
  return () => clearInterval(timer);
}
