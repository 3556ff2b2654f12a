/**
 * Wires the server: load config -> open store -> build services -> ensure keys -> build the
 * provider and the app -> listen. `startServer` is what `tessera serve` and the tests call.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

import { ADMIN_API_PATH } from './admin/resource.ts';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { Federation } from './domain/federation.ts';
import { lazyMount } from './http/lazy-mount.ts';
import { renderPage } from './http/render.ts';
import { upstreamSignIn } from './interaction/first-factors/upstream.ts';
import { createLogger, type Logger } from './log.ts';
import { metricsServed } from './observability/endpoints.ts';
import { Metrics } from './observability/metrics.ts';
import { createAdapterClass } from './oidc/adapter.ts';
import { sweepUnusedClients } from './oidc/features/registration.ts';
import { ProviderHost } from './oidc/provider-host.ts';
import { buildServices } from './services.ts';
import { openStore } from './store/open-store.ts';

/** How long closing waits for logout tokens still being sent (see domain/backchannel-logout.ts). */
const LOGOUT_DRAIN_MS = 2_000;

export interface RunningServer {
  readonly url: string;
  readonly issuer: string;
  readonly port: number;
  /** The mTLS listener's base URL and port, when MTLS_PORT is set. */
  readonly mtlsUrl: string | undefined;
  readonly mtlsPort: number | undefined;
  readonly host: ProviderHost;
  /** Stops accepting connections, lets in-flight requests finish, closes the store. */
  close(): Promise<void>;
}

type Listener = http.Server | https.Server;

function createListener(config: Config, options: { requestClientCertificates: boolean }): Listener {
  const { cert, key } = config.tls;
  const server = cert && key
    ? https.createServer({
      cert,
      key,
      minVersion: 'TLSv1.2',
      // The mTLS listener asks for a certificate but lets the handshake finish without one, or with
      // one from any CA: Tessera decides per client authentication method (RFC 8705), not the TLS layer.
      ...(options.requestClientCertificates && { requestCert: true, rejectUnauthorized: false }),
    })
    : http.createServer();
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 100;
  return server;
}

async function listen(server: Listener, port: number, host: string | undefined): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

type RequestHandler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

/**
 * Requests that arrive after listen() but before the app is ready: they wait and are handed over in
 * order once it is, or get 503 if startup fails. Without this they would get no answer at all, and
 * a restarted cluster worker receives connections as soon as it listens, while its store still opens.
 */
function waitingRoom(listeners: readonly Listener[]) {
  let waiting: Array<[http.IncomingMessage, http.ServerResponse]> = [];
  const refuse = (response: http.ServerResponse) => {
    response.writeHead(503, { 'Retry-After': '5', 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
    response.end('Tessera is not ready; try again in a few seconds.\n');
  };
  let admit: RequestHandler = (request, response) => waiting.push([request, response]);
  const wait: RequestHandler = (request, response) => admit(request, response);
  for (const listener of listeners) listener.on('request', wait);
  return {
    open(callback: RequestHandler) {
      for (const listener of listeners) {
        listener.off('request', wait);
        listener.on('request', callback);
      }
      for (const [request, response] of waiting) callback(request, response);
      waiting = [];
    },
    refuseWaiting() {
      admit = (_request, response) => refuse(response);
      for (const [, response] of waiting) refuse(response);
      waiting = [];
    },
  };
}

function closeListener(server: Listener): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

export async function startServer(baseConfig: Config, logger: Logger = createLogger(baseConfig.logLevel)): Promise<RunningServer> {
  // Listen first: with PORT=0 (tests) the issuer can only be known once the port is.
  const server = createListener(baseConfig, { requestClientCertificates: false });
  const mtlsServer = baseConfig.tls.mtlsPort === undefined ? undefined : createListener(baseConfig, { requestClientCertificates: true });
  const listeners = [server, ...(mtlsServer ? [mtlsServer] : [])];
  const room = waitingRoom(listeners);
  const closeAll = () => {
    room.refuseWaiting();
    return Promise.all(listeners.map((listener) => listener.listening && closeListener(listener)));
  };
  let port: number;
  let mtlsPort: number | undefined;
  try {
    port = await listen(server, baseConfig.port, baseConfig.host);
    mtlsPort = mtlsServer ? await listen(mtlsServer, baseConfig.tls.mtlsPort!, baseConfig.host) : undefined;
  } catch (error) {
    await closeAll();
    throw error;
  }
  const scheme = baseConfig.tls.cert ? 'https' : 'http';
  const config: Config = baseConfig.issuerExplicit
    ? baseConfig
    : Object.freeze({ ...baseConfig, port, issuer: `${scheme}://localhost:${port}` });
  // Behind a proxy, MTLS_URL names the proxy's certificate-requesting host; natively, our own listener.
  const mtlsUrl = mtlsPort === undefined
    ? config.tls.mtlsUrl
    : config.tls.mtlsUrl ?? `https://${new URL(config.issuer).hostname}:${mtlsPort}`;

  const store = await openStore(config, { warn: (message) => logger.warn(message) }).catch(async (error: unknown) => {
    await closeAll();
    throw error;
  });
  try {
    const services = buildServices(config, store, logger);
    const metrics = new Metrics();
    metrics.subscribe(services.events);
    services.backchannelLogout.observe((outcome) => metrics.backchannelLogout(outcome));
    metrics.gauge('tessera_backchannel_logout_pending', 'Back-channel logout tokens queued, being sent or waiting for a retry', () => services.backchannelLogout.pending);
    metrics.gauge('tessera_audit_events_queued', 'Audit events waiting to be written to the store', () => services.audit.queued);
    metrics.gauge('tessera_audit_events_dropped', 'Audit events dropped since start because the store could not take them', () => services.audit.dropped);
    if (services.secret.generatedFile) {
      logger.warn({ file: services.secret.generatedFile }, 'using a generated TESSERA_SECRET; set TESSERA_SECRET in production');
    }
    await services.keys.ensure();
    const host = await ProviderHost.start({
      config,
      accounts: services.accounts,
      clients: services.clients,
      resources: services.resources,
      mtlsBaseUrl: mtlsUrl,
      keys: services.keys,
      revisions: store.revisions,
      adapter: createAdapterClass({ oidc: store.oidc, clients: services.clients, refreshReuseGraceSeconds: config.refreshReuseGraceSeconds }),
      oidc: store.oidc,
      logger,
      render: renderPage,
      events: services.events,
      metrics,
      rateLimits: services.rateLimits,
      backchannelLogout: services.backchannelLogout,
    });
    host.watch();
    const stopSweep = sweepUnusedClients(config, services.clients, logger);
    const app = createApp({
      config,
      logout: services.backchannelLogout,
      mtlsUrl,
      logger,
      host,
      accounts: services.accounts,
      rateLimits: services.rateLimits,
      emailVerification: services.emailVerification,
      passwordReset: services.passwordReset,
      secondFactors: services.secondFactors,
      oidc: store.oidc,
      masterSecret: services.secret.value,
      events: services.events,
      metrics,
      pingStore: () => store.ping(),
      resources: (audience) => services.resources.find(audience),
      upstreams: services.upstreams,
      identities: services.identities,
      upstreamSignIn: upstreamSignIn({
        upstreams: services.upstreams,
        identities: services.identities,
        federation: new Federation({ timeoutSeconds: config.upstreamTimeoutSeconds, production: config.env === 'production' }),
        oidc: store.oidc,
        rateLimits: services.rateLimits,
        logger,
        events: services.events,
        flowTtlSeconds: config.ttl.interaction,
      }),
      adminApi: config.security.adminApi ? lazyMount(ADMIN_API_PATH, async () => (await import('./admin/router.ts')).adminApi({
        config,
        logger,
        services,
        provider: () => host.provider,
        refresh: () => host.refresh(),
        oidc: store.oidc,
        keys: store.keys,
        revisions: store.revisions,
        events: services.events,
        audit: services.audit,
      })) : undefined,
    });
    if (!metricsServed(config.observability.metricsToken, config.env === 'production')) {
      logger.warn('METRICS_TOKEN is not set: /metrics is not served in production; set it and scrape with Authorization: Bearer METRICS_TOKEN');
    }
    // The leaked-password list loads in the background, so the first sign-up does not wait for it.
    services.accounts.passwordPolicy.warm().then(
      () => logger.debug({ passwords: services.accounts.passwordPolicy.listStats }, 'leaked-password list loaded'),
      (error: unknown) => logger.error({ err: error }, 'could not load the leaked-password list'),
    );
    room.open(app.callback());
    logger.info({ issuer: config.issuer, store: store.kind, port, mtlsUrl }, `Tessera is listening; discovery at ${config.issuer}/.well-known/openid-configuration`);
    logger.info({ mail: services.mailer.destination }, config.mail.smtpUrl
      ? `mail goes over SMTP to ${services.mailer.destination}`
      : `no SMTP_URL: mail is written as .eml files to ${services.mailer.destination}`);
    // Batched lines (log.ts) would reach a supervisor waiting for "listening" up to 200 ms late.
    logger.flush();

    let closing: Promise<void> | undefined;
    return {
      url: `${scheme}://localhost:${port}`,
      issuer: config.issuer,
      port,
      mtlsUrl,
      mtlsPort,
      host,
      close() {
        closing ??= (async () => {
          host.stop();
          stopSweep();
          await closeAll();
          // Logout tokens being sent get a moment to arrive (the key store is still open); retries
          // scheduled for later are given up: the apps' sessions then run out on their own.
          await Promise.race([services.backchannelLogout.idle(), delay(LOGOUT_DRAIN_MS, undefined, { ref: false })]);
          services.backchannelLogout.stop();
          // Audit events still queued are written before the store goes.
          await services.close();
          await store.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    await store.close();
    throw error;
  }
}
