/**
 * Resource indicators (RFC 8707): which APIs a client may get access tokens for, with which scopes,
 * for how long and in which format, and which scopes are limited to roles.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';

import { DEFAULT_ACCESS_TOKEN_SIGNING_ALG } from '../../config.ts';
import type { AccountService } from '../../domain/accounts.ts';
import type { ResourceServer, ResourceService } from '../../domain/resources.ts';
import { hasRoleLimits, scopesForRoles } from '../../domain/roles.ts';
import { metadataOf, OIDC_SCOPES, type ClientLike } from '../client-metadata.ts';
import type { Slice } from './feature.ts';

function allowedResources(client: ClientLike): Record<string, string[]> {
  return (metadataOf(client).tessera_resources as Record<string, string[]> | undefined) ?? {};
}

const allowedScopesByClient = new WeakMap<object, Set<string>>();

/** Every scope a client may ask for at any of its resources (built once per client, like its metadata). */
function allowedScopes(client: ClientLike): Set<string> {
  let scopes = allowedScopesByClient.get(client);
  if (!scopes) {
    scopes = new Set(Object.values(allowedResources(client)).flat());
    allowedScopesByClient.set(client, scopes);
  }
  return scopes;
}

/**
 * The roles of whoever the token would be for, when the resource limits scopes to roles: a machine
 * client's own (`tessera_roles` metadata) for client credentials, otherwise the signed-in person's.
 * Undefined while nobody is known (before sign-in, a pushed request): limited scopes are withheld.
 */
async function holderRoles(accounts: AccountService, ctx: KoaContextWithOIDC, client: ClientLike, machine: boolean): Promise<string[] | undefined> {
  if (machine) {
    const roles = metadataOf(client).tessera_roles;
    return Array.isArray(roles) ? roles.map(String) : undefined;
  }
  const sub = ctx.oidc.account?.accountId ?? ctx.oidc.session?.accountId;
  if (!sub) return undefined;
  const account = await accounts.findBySub(sub);
  return account && !account.disabled ? account.roles : undefined;
}

/**
 * OpenID Connect scopes (openid, profile, offline_access...) are about a signed-in person, and the
 * client credentials grant has none: asking for one there is invalid_scope, where oidc-provider
 * would issue a token carrying `openid` (or, with a resource, silently drop it). Checked both
 * where a resource is named (resourceServerInfo) and where none is (defaultResource).
 */
function refusePersonScopes(ctx: KoaContextWithOIDC): void {
  const params = ctx.oidc.params as Record<string, unknown> | undefined;
  if (ctx.oidc.route !== 'token' || params?.grant_type !== 'client_credentials' || typeof params.scope !== 'string') return;
  const personScopes = params.scope.split(' ').filter((scope) => OIDC_SCOPES.has(scope));
  if (personScopes.length) throw new errors.InvalidScope('OpenID Connect scopes need a signed-in person, and the client credentials grant has none', personScopes.join(' '));
}

/**
 * Which access tokens a client may get for a resource server: only the scopes both the resource
 * offers and the client was allowed. Asking for any other API scope fails with invalid_scope
 * (oidc-provider alone would silently drop it), and so does an OpenID Connect scope such as
 * `openid` with the client credentials grant. A scope the resource limits to roles is offered
 * only when the holder has one of them: a person without it is simply not granted it (the token
 * response's `scope` says what was), a machine client asking for it explicitly gets invalid_scope.
 * This runs again at every token request, so a role taken away stops the next refresh too.
 */
async function resourceServerInfo(resources: ResourceService, accounts: AccountService, ctx: KoaContextWithOIDC, indicator: string, client: ClientLike) {
  const resource = await resources.find(indicator);
  if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  const params = ctx.oidc.params as Record<string, unknown> | undefined;
  const machine = ctx.oidc.route === 'token' && params?.grant_type === 'client_credentials';
  if (!machine) return workOutInfo(accounts, ctx, resources, resource, indicator, client, params, false);
  // A machine client's answer depends only on the client, the resource and the scope it asked for.
  const requestedScope = typeof params.scope === 'string' ? params.scope : undefined;
  let byResource = machineAnswers.get(client);
  if (!byResource) {
    byResource = new WeakMap();
    machineAnswers.set(client, byResource);
  }
  let byScope = byResource.get(resource);
  if (!byScope) {
    byScope = new Map();
    byResource.set(resource, byScope);
  }
  const known = byScope.get(requestedScope);
  if (known) {
    if (requestedScope === undefined) params.scope = known.defaultScope;
    return known.info;
  }
  const info = await workOutInfo(accounts, ctx, resources, resource, indicator, client, params, true);
  // The requested scope comes from the caller: a client asking for ever new ones starts this over.
  if (byScope.size >= MACHINE_ANSWERS_PER_RESOURCE) byScope.clear();
  byScope.set(requestedScope, { info, defaultScope: params.scope as string | undefined });
  return info;
}

type ResourceServerInfo = Awaited<ReturnType<typeof workOutInfo>>;

/**
 * The answers given to machine clients (client credentials), by client, resource and requested scope
 * (undefined: none asked for, and `defaultScope` is then what the request gets). A client or
 * resource that changes is a new object (the client and resource caches are rebuilt when their
 * store revision moves), so a change is never answered from here; refusals are not kept, so they
 * are worked out (and their errors thrown) each time. Only successful answers are remembered.
 */
const machineAnswers = new WeakMap<object, WeakMap<object, Map<string | undefined, { info: ResourceServerInfo; defaultScope: string | undefined }>>>();
const MACHINE_ANSWERS_PER_RESOURCE = 32;

async function workOutInfo(
  accounts: AccountService, ctx: KoaContextWithOIDC, resources: ResourceService, resource: ResourceServer, indicator: string, client: ClientLike,
  params: Record<string, unknown> | undefined, machine: boolean,
) {
  const allowed = allowedResources(client);
  // Across the code flow a person consents for the app, so any client (registered by hand or by
  // itself) may ask for an API the operator registered, unless the API names the clients it accepts
  // (`resources create --client`). Machine clients, and Tessera's own APIs (the admin API), still
  // need the client allowed by name; role-limited scopes stay limited below either way.
  const byConsent = !machine && !allowed[indicator] && !resources.builtIns().some((builtIn) => builtIn.audience === indicator)
    && (!resource.clients?.length || resource.clients.includes(client.clientId));
  const clientScopes = allowed[indicator] ?? (byConsent ? resource.scopes : undefined);
  if (!clientScopes) throw new errors.InvalidTarget(`this client may not request tokens for ${indicator}`);
  const everyAllowedScope = byConsent ? new Set([...allowedScopes(client), ...resource.scopes]) : allowedScopes(client);
  const permitted = resource.scopes.filter((scope) => clientScopes.includes(scope));
  const available = hasRoleLimits(resource.scopeRoles)
    ? scopesForRoles(permitted, resource.scopeRoles, await holderRoles(accounts, ctx, client, machine))
    : permitted;
  // RFC 6749 section 3.3: without a scope the server uses a documented default. Tessera's default for
  // a machine client is everything it is allowed at that resource (oidc-provider would issue none).
  if (params && machine && params.scope === undefined) {
    params.scope = available.join(' ');
  }
  const requested = typeof params?.scope === 'string' ? params.scope.split(' ') : [];
  if (machine) refusePersonScopes(ctx);
  const refused = requested.filter((scope) => scope && !OIDC_SCOPES.has(scope) && !everyAllowedScope.has(scope));
  if (refused.length) throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));
  if (machine) {
    const withheld = requested.filter((scope) => permitted.includes(scope) && !available.includes(scope));
    if (withheld.length) throw new errors.InvalidScope('requested scope is limited to roles the client does not hold', withheld.join(' '));
  }
  return {
    scope: available.join(' '),
    audience: resource.audience,
    accessTokenTTL: resource.ttlSeconds,
    accessTokenFormat: resource.format,
    // Each algorithm has a key of its own family in the keystore (domain/keys.ts), so oidc-provider finds one.
    ...(resource.format === 'jwt' && { jwt: { sign: { alg: resource.signingAlg ?? DEFAULT_ACCESS_TOKEN_SIGNING_ALG } } }),
  };
}

/**
 * oidc-provider asks for a resource server's info more than once while handling one token request
 * (checking the resource, then issuing); the answer cannot change within a request, so it is worked
 * out once per request, resource and client.
 */
const RESOURCE_INFO = Symbol('tessera.resourceServerInfo');

function resourceServerInfoOnce(resources: ResourceService, accounts: AccountService, ctx: KoaContextWithOIDC, indicator: string, client: ClientLike) {
  const state = ctx.state as Record<symbol, Map<string, ReturnType<typeof resourceServerInfo>> | undefined>;
  let known = state[RESOURCE_INFO];
  if (!known) {
    known = new Map();
    state[RESOURCE_INFO] = known;
  }
  const key = `${client.clientId} ${indicator}`;
  let info = known.get(key);
  if (!info) {
    info = resourceServerInfo(resources, accounts, ctx, indicator, client);
    known.set(key, info);
  }
  return info;
}

export const resourceIndicators: Slice = {
  name: 'resource indicators',
  configure: ({ accounts, resources }) => ({
    features: {
      resourceIndicators: {
        enabled: true,
        // A machine client allowed exactly one API needs no `resource` parameter.
        defaultResource(ctx, client, oneOf) {
          refusePersonScopes(ctx);
          if (oneOf?.length) return oneOf[0]!;
          const audiences = Object.keys(allowedResources(client as unknown as ClientLike));
          return audiences.length === 1 && client.grantTypeAllowed('client_credentials') ? audiences[0]! : undefined!;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, client) => resourceServerInfoOnce(resources, accounts, ctx, indicator, client as unknown as ClientLike),
      },
    },
  }),
};
