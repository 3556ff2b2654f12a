/**
 * The Koa application: security headers, request ids, error pages, the interaction pages, and
 * oidc-provider for every protocol endpoint. `createApp` never listens, so tests start it on port 0.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Koa, { type Context, type Middleware, type Next } from 'koa';
import compose from 'koa-compose';
import send from 'koa-send';

import { accountRouter } from './account/router.ts';
import { REGISTRATION_API_PREFIX } from './api/paths.ts';
import type { Config } from './config.ts';
import type { AccountService } from './domain/accounts.ts';
import type { SessionLogout } from './domain/backchannel-logout.ts';
import type { SecurityEvents } from './domain/events.ts';
import type { EmailVerification } from './domain/email-verification.ts';
import type { IdentityService } from './domain/identities.ts';
import type { PasswordReset } from './domain/password-reset.ts';
import type { SecondFactorService } from './domain/second-factors.ts';
import type { UpstreamService } from './domain/upstreams.ts';
import { brandingAssets } from './http/branding.ts';
import { refuseEncodedBodies, refuseMisdirectedRequests, settleRequestOrigin } from './http/edge.ts';
import { errorHandler } from './http/error-handler.ts';
import { lazyMount } from './http/lazy-mount.ts';
import { defaultLocale, languageRoute } from './http/locale.ts';
import type { RateLimits } from './http/rate-limit.ts';
import { renderPage } from './http/render.ts';
import { securityHeaders } from './http/security-headers.ts';
import { viewsMiddleware } from './http/views.ts';
import type { ResourceNames } from './interaction/consent.ts';
import type { UpstreamSignIn } from './interaction/first-factors/upstream.ts';
import { recoveryRouter } from './interaction/recovery.ts';
import { interactionRouter } from './interaction/router.ts';
import type { Logger } from './log.ts';
import { observabilityEndpoints } from './observability/endpoints.ts';
import { observeRequests } from './observability/http.ts';
import type { Metrics } from './observability/metrics.ts';
import { clientCertificates } from './oidc/client-certificates.ts';
import { CONSOLE_PATH } from './oidc/console-client.ts';
import { prefillUserCode } from './oidc/features/device-flow.ts';
import { preparedDocuments } from './oidc/features/documents.ts';
import { limitClientRegistrations } from './oidc/features/registration.ts';
import { CLIENT_AUTHENTICATING_PATHS, PROTOCOL_PATHS, PUBLIC_DOCUMENT_PATHS } from './oidc/features/index.ts';
import type { ProviderHost } from './oidc/provider-host.ts';
import { isProtocolPathVariant } from './oidc/routes.ts';
import type { OidcStore } from './store/port.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VIEWS_DIR = path.join(ROOT, 'views');
const ASSETS_DIR = path.join(VIEWS_DIR, 'assets');

export interface AppDependencies {
  config: Config;
  /** Sessions the account page ends are told here, so their apps get logout tokens. */
  logout: SessionLogout;
  logger: Logger;
  host: ProviderHost;
  accounts: AccountService;
  rateLimits: RateLimits;
  emailVerification: EmailVerification;
  passwordReset: PasswordReset;
  secondFactors: SecondFactorService;
  /** The account page reads a person's sessions and grants, and keeps one-time notices, here. */
  oidc: OidcStore;
  masterSecret: string;
  /** Security events (sign-ins, consents, changes) the pages emit; the audit trail and metrics listen. */
  events: SecurityEvents;
  metrics: Metrics;
  /** The store's ping, for /readyz. */
  pingStore(): Promise<void>;
  /** Sign-in through upstream identity providers (interaction/first-factors/upstream.ts), and linking them on the account page. */
  upstreamSignIn: UpstreamSignIn;
  upstreams: UpstreamService;
  identities: IdentityService;
  /** Public base URL of the mTLS endpoints (MTLS_URL, or Tessera's own mTLS listener), when there are any. */
  mtlsUrl?: string | undefined;
  /** The admin API (admin/router.ts); absent with ADMIN_API=false, and /admin/api is then a 404 like any unknown path. */
  adminApi?: Middleware | undefined;
  /** Resource servers by indicator, for the consent page's API names. */
  resources?: ResourceNames | undefined;
}

/** RFC 9700 section 4.12: a redirect answering a POST must be 303, or the browser may re-POST the form (with credentials) to the target. */
async function seeOtherAfterPost(ctx: Context, next: Next) {
  await next();
  if (ctx.method === 'POST' && (ctx.status === 302 || ctx.status === 307)) ctx.status = 303;
}

/**
 * oidc-provider's endpoints that machines call in volume (every token, introspection and userinfo
 * request, every RP's discovery and JWKS fetch). They answer JSON, never a page, and nothing after
 * the error middleware has anything at these paths (views, static files, pages, routers, Tessera's
 * own APIs), so their requests skip all of it: profiling showed the routers' matching alone at
 * several percent of a client_credentials request, and every middleware layer costs a promise and an
 * allocation or two. The rest of the protocol (authorization, logout) takes the long way. Which
 * paths these are is each feature's to say (oidc/features/*, `fastPath`); PROTOCOL_PATHS is derived.
 */
const isProtocolPath = (ctx: Context) => PROTOCOL_PATHS.has(ctx.path);

function protocolEndpoints(protocol: (ctx: Context) => Promise<unknown>, currentProvider: () => object): Middleware {
  const servePreparedDocument = preparedDocuments(currentProvider);
  const serveDocument = async (ctx: Context) => {
    await servePreparedDocument(ctx, () => protocol(ctx));
    // A 304 carries the caching headers the 200 would have (RFC 9110 section 15.4.5).
    if (ctx.status === 200 || ctx.status === 304) ctx.set('Cache-Control', 'public, max-age=300, stale-while-revalidate=60');
  };
  // Not async itself: a token request goes straight on to oidc-provider, with no promise of this layer's.
  return function protocolEndpoint(ctx, next) {
    const { path } = ctx;
    if (!PROTOCOL_PATHS.has(path)) return next();
    if (!PUBLIC_DOCUMENT_PATHS.has(path) || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return protocol(ctx);
    return serveDocument(ctx);
  };
}

async function assets(ctx: Context, next: Next) {
  if (!ctx.path.startsWith('/assets/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
  await send(ctx, ctx.path.slice('/assets/'.length), { root: ASSETS_DIR, maxage: 3_600_000 });
}

export function createApp({ config, logger, host, accounts, rateLimits, emailVerification, passwordReset, secondFactors, oidc, masterSecret, adminApi, events, metrics, pingStore, mtlsUrl, upstreamSignIn, upstreams, identities, resources, logout }: AppDependencies): Koa {
  // `proxy: true` whatever BEHIND_TLS_PROXY says: settleRequestOrigin, first in the chain, sets
  // X-Forwarded-Host and X-Forwarded-Proto to Tessera's own origin on every request, so Koa (and
  // oidc-provider, provider-host.ts) build URLs from ISSUER, never from what a caller sent.
  // maxIpsCount 1: ctx.ip (oidc-provider reads it) is then the address the nearest proxy added,
  // not the left end of X-Forwarded-For that the client wrote; from other peers the header is gone.
  const app = new Koa({ proxy: true, maxIpsCount: 1 });
  host.attach(app);
  // Koa would print every error to stderr; the error middleware below logs what matters, once, with redaction.
  app.silent = true;
  const edge = { issuer: config.issuer, mtlsUrl, behindTlsProxy: config.behindTlsProxy, trustedProxies: config.tls.trustedProxies, isPathVariant: isProtocolPathVariant };
  app.use(settleRequestOrigin(edge));
  app.use(observeRequests({ logger, metrics, address: (ctx) => rateLimits.address(ctx) }));
  app.use(securityHeaders(isProtocolPath));
  app.use(errorHandler(logger, { answersJson: isProtocolPath }));
  // Before the protocol fork: oidc-provider's own pages (error, logout) are translated too.
  app.use(defaultLocale(config.defaultLocale));
  // Also before the fork: oidc-provider's pages carry the operator's brand like ours.
  app.use(brandingAssets(config.branding).serve);
  app.use(refuseMisdirectedRequests(edge));
  app.use(refuseEncodedBodies());
  const protocol = compose([
    clientCertificates(config.tls, logger, CLIENT_AUTHENTICATING_PATHS),
    rateLimits.clientFailures(CLIENT_AUTHENTICATING_PATHS),
    rateLimits.devicePolls(config.devicePollInterval),
    host.middleware(),
  ]);
  const endOfChain = async () => {};
  app.use(protocolEndpoints((ctx) => protocol(ctx, endOfChain), () => host.provider));
  // ctx.render for pages and for oidc-provider's own (error, logout); templates compiled once in production.
  app.use(viewsMiddleware({ root: VIEWS_DIR, cache: config.env === 'production' }));
  app.use(seeOtherAfterPost);
  app.use(assets);
  app.use(languageRoute(config.issuer));

  app.use(async function home(ctx, next) {
    if (ctx.path !== '/' || ctx.method !== 'GET') return next();
    await renderPage(ctx, 'home', { issuer: config.issuer });
  });
  app.use(async function healthz(ctx, next) {
    if (ctx.path !== '/healthz') return next();
    ctx.body = { status: 'ok' };
  });
  app.use(observabilityEndpoints({
    metrics,
    ping: pingStore,
    keysLoaded: () => Boolean(host.provider),
    metricsToken: config.observability.metricsToken,
    production: config.env === 'production',
  }));

  const interactions = interactionRouter({ provider: () => host.provider, accounts, logger, rateLimits, emailVerification, secondFactors, events, upstreams: upstreamSignIn, resources });
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  app.use(upstreamSignIn.callbackRouter().routes());
  const recovery = recoveryRouter({ accounts, emailVerification, passwordReset, rateLimits, logger, events, secondFactors });
  app.use(recovery.routes());
  app.use(recovery.allowedMethods());
  const account = accountRouter({
    config, provider: () => host.provider, accounts, secondFactors, oidc, masterSecret, logger, events, rateLimits, upstreams, identities, upstreamLinks: upstreamSignIn, logout, emailVerification,
  });
  app.use(account.routes());
  app.use(account.allowedMethods());
  // REGISTRATION_API=false: the route does not exist at all (404, like any unknown path).
  if (config.security.registrationApi) {
    app.use(lazyMount(REGISTRATION_API_PREFIX, async () => {
      const { registrationApi } = await import('./api/registration.ts');
      return registrationApi({ provider: () => host.provider, accounts, emailVerification, rateLimits, logger });
    }));
  }
  app.use(limitClientRegistrations(config, rateLimits));
  // The admin console (/admin) calls the admin API through this same app, in process, as its operator.
  if (adminApi) {
    let handler: ReturnType<Koa['callback']> | undefined;
    app.use(lazyMount(CONSOLE_PATH, async () => {
      const [{ AdminApiCaller }, { consoleRouter }] = await Promise.all([import('./console/admin-calls.ts'), import('./console/router.ts')]);
      const api = new AdminApiCaller(config.issuer, () => (handler ??= app.callback()));
      return consoleRouter({ config, provider: () => host.provider, api, oidc, masterSecret, logger });
    }));
  }
  app.use(clientCertificates(config.tls, logger, CLIENT_AUTHENTICATING_PATHS));
  // After clientCertificates: a certificate-bound admin token is checked against the presented certificate.
  if (adminApi) app.use(adminApi);
  app.use(prefillUserCode());
  app.use(rateLimits.userCodeGuesses());
  app.use(host.middleware());
  return app;
}
