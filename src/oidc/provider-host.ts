/**
 * Holds the running oidc-provider instance and replaces it when keys change elsewhere (a
 * `tessera keys rotate`, another instance), so rotation needs no restart. Hooks past oidc-provider's
 * documented configuration live in internals.ts.
 */
import path from 'node:path';

import type Koa from 'koa';
import type { Middleware } from 'koa';
import compose from 'koa-compose';
import { Provider } from 'oidc-provider';

import { ConfigError, type Config } from '../config.ts';
import { AppError, errorAnswer } from '../errors.ts';
import type { AccountService } from '../domain/accounts.ts';
import type { ClientService } from '../domain/clients.ts';
import type { SecurityEvents } from '../domain/events.ts';
import type { KeyMaterial, KeyService } from '../domain/keys.ts';
import type { ResourceService } from '../domain/resources.ts';
import { cookieSigner, type CookieSigner } from '../http/cookie-signing.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../observability/metrics.ts';
import { observeProvider } from '../observability/provider-events.ts';
import { isStoreUnavailable } from '../store/outage.ts';
import type { OidcStore, RevisionRepository } from '../store/port.ts';
import { providerFacing, type AdapterConstructor } from './adapter.ts';
import { buildConfiguration } from './configuration.ts';
import { noteFirstUse } from './features/registration.ts';
import type { RenderPage } from './features/feature.ts';
import { deviceFlowEvents } from './features/device-flow.ts';
import { extendProvider } from './internals.ts';

export interface ProviderHostDependencies {
  config: Config;
  accounts: AccountService;
  clients: ClientService;
  resources: ResourceService;
  keys: KeyService;
  /** Public base URL of the mTLS listener, when there is one (known only once it listens). */
  mtlsBaseUrl?: string | undefined;
  revisions: RevisionRepository;
  adapter: AdapterConstructor;
  /** oidc-provider's records, read directly where its models have no lookup (grants by account). */
  oidc: OidcStore;
  logger: Logger;
  /** Renders Tessera's pages for oidc-provider's error and logout pages (http/render.ts). */
  render: RenderPage;
  /** Where RP-initiated logout's logout tokens are queued (domain/backchannel-logout.ts). */
  backchannelLogout?: { notify(clientId: string, sub: string, sid: string): void } | undefined;
  /** Token issuance and revocation become security events and metrics (observability/provider-events.ts). */
  events?: SecurityEvents | undefined;
  metrics?: Metrics | undefined;
  /** Counts uses of limited initial access tokens (dynamic client registration). */
  rateLimits?: RateLimits | undefined;
}

export class ProviderHost {
  readonly #deps: ProviderHostDependencies;
  #provider!: Provider;
  #middleware!: Middleware;
  #fingerprint = '';
  #keysRevision = -1;
  #app: Koa | undefined;
  /** Signs and checks cookies with the key material's cookie keys (http/cookie-signing.ts). */
  #cookieSigner: CookieSigner | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The services oidc-provider's hooks call, answering a store outage as temporarily_unavailable. */
  readonly #facing: { accounts: AccountService; resources: ResourceService };

  private constructor(deps: ProviderHostDependencies) {
    this.#deps = deps;
    this.#facing = { accounts: providerFacing(deps.accounts), resources: providerFacing(deps.resources) };
  }

  static async start(deps: ProviderHostDependencies): Promise<ProviderHost> {
    const host = new ProviderHost(deps);
    await host.refresh();
    await host.#validateStaticClients();
    return host;
  }

  /** oidc-provider checks static client metadata lazily, at first use; an operator wants to know at startup. */
  async #validateStaticClients(): Promise<void> {
    const problems: string[] = [];
    const file = path.join(this.#deps.config.configDir, 'clients.json');
    for (const metadata of this.#deps.clients.staticClients()) {
      try {
        await this.#provider.Client.find(String(metadata.client_id));
      } catch (error) {
        const { error_description: description, message } = error as { error_description?: string; message?: string };
        problems.push(`${file}: client ${String(metadata.client_id)}: ${description ?? message}`);
      }
    }
    if (problems.length) throw new ConfigError(problems);
  }

  get provider(): Provider {
    return this.#provider;
  }

  /**
   * Koa middleware that hands the request to whichever provider is current. A store outage answers
   * 503 with Retry-After, also when it surfaced somewhere oidc-provider can only call a server_error.
   */
  middleware(): Middleware {
    const current = () => this.#middleware;
    // The outage's answer from the table (errors.ts), as every other surface gives it.
    const outage = errorAnswer(new AppError('ERR_STORE_UNAVAILABLE', 'The store is unavailable.'));
    return async function oidcProvider(ctx, next) {
      await current()(ctx, next);
      if (ctx.state.storeUnavailable === true && ctx.status === 500) {
        ctx.status = 503;
        if ((ctx.body as { error?: unknown } | undefined)?.error === 'server_error') {
          ctx.body = { error: outage.body.error, error_description: outage.body.error_description };
        }
      }
      if (ctx.status === 503) ctx.set(outage.headers);
    };
  }

  /**
   * Mounted middleware signs cookies with the hosting app's keys, not the provider's, so the
   * hosting app must carry the same cookie keys, and follow them when they change.
   */
  attach(app: Koa): void {
    this.#app = app;
    if (this.#cookieSigner) app.keys = this.#cookieSigner;
  }

  /** Starts polling the store for key and client changes made by other processes. */
  watch(): void {
    this.#timer = setInterval(() => {
      this.refresh().catch((error: unknown) => this.#deps.logger.error({ err: error }, 'could not refresh keys and clients from the store'));
    }, this.#deps.config.storePollSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Drops stale client caches and rebuilds the provider when the key set changed. */
  async refresh(): Promise<void> {
    await Promise.all([this.#deps.clients.refresh(), this.#deps.resources.refresh()]);
    const revision = await this.#deps.revisions.get('keys');
    if (revision === this.#keysRevision && this.#provider) return;
    const material = await this.#deps.keys.material();
    this.#keysRevision = revision;
    if (material.fingerprint === this.#fingerprint) return;
    this.#install(material);
  }

  #install(material: KeyMaterial): void {
    const { config, clients, adapter, oidc, logger, mtlsBaseUrl, render } = this.#deps;
    const { accounts, resources } = this.#facing;
    const provider = new Provider(config.issuer, buildConfiguration({
      config,
      accounts,
      resources,
      keys: material,
      adapter,
      oidc,
      staticClients: clients.staticClients(),
      mtlsBaseUrl,
      render,
      countTokenUse: this.#deps.rateLimits && ((key, uses, seconds) => this.#deps.rateLimits!.countTokenUse(key, uses, seconds)),
    }));
    // The forwarded headers it reads are Tessera's own by then (http/edge.ts sets them to ISSUER's origin).
    provider.proxy = true;
    extendProvider(provider, { backchannelLogout: this.#deps.backchannelLogout, cachedClientMetadata: (clientId) => clients.cachedMetadata(clientId) });
    deviceFlowEvents(provider, config);
    observeProvider(provider, this.#deps);
    noteFirstUse(provider, clients, logger);
    provider.on('server_error', (ctx, error) => {
      if (isStoreUnavailable(error)) {
        if (ctx.state) ctx.state.storeUnavailable = true;
        logger.warn({ err: error, requestId: ctx.state?.requestId }, 'store unavailable');
        return;
      }
      logger.error({ err: error, requestId: ctx.state?.requestId }, 'oidc-provider server error');
    });
    this.#provider = provider;
    this.#middleware = compose(provider.middleware as Middleware[]);
    // One signer for both: the mounted middleware reads the hosting app's keys, interactionDetails() the provider's.
    const signer = cookieSigner(material.cookieKeys);
    provider.keys = signer;
    this.#cookieSigner = signer;
    if (this.#app) this.#app.keys = signer;
    if (this.#fingerprint) logger.info({ keys: material.fingerprint }, 'signing keys changed; provider rebuilt');
    this.#fingerprint = material.fingerprint;
  }
}
