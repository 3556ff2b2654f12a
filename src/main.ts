/**
 * Wires the server: load config -> open store -> build services -> ensure keys -> build the
 * provider and the app -> listen. `startServer` is what `tessera serve` and the tests call.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { createAdapterClass } from './oidc/adapter.ts';
import { ProviderHost } from './oidc/provider-host.ts';
import { buildServices } from './services.ts';
import { openStore } from './store/open-store.ts';

export interface RunningServer {
  readonly url: string;
  readonly issuer: string;
  readonly port: number;
  readonly host: ProviderHost;
  /** Stops accepting connections, lets in-flight requests finish, closes the store. */
  close(): Promise<void>;
}

export async function startServer(baseConfig: Config, logger: Logger = createLogger(baseConfig.logLevel)): Promise<RunningServer> {
  // Listen first: with PORT=0 (tests) the issuer can only be known once the port is.
  const server = http.createServer();
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(baseConfig.port, baseConfig.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const config: Config = baseConfig.issuerExplicit
    ? baseConfig
    : Object.freeze({ ...baseConfig, port, issuer: `http://localhost:${port}` });

  const store = await openStore(config).catch((error: unknown) => {
    server.close();
    throw error;
  });
  try {
    const services = buildServices(config, store);
    if (services.secret.generatedFile) {
      logger.warn({ file: services.secret.generatedFile }, 'using a generated TESSERA_SECRET; set TESSERA_SECRET in production');
    }
    await services.keys.ensure();
    const host = await ProviderHost.start({
      config,
      accounts: services.accounts,
      clients: services.clients,
      keys: services.keys,
      revisions: store.revisions,
      adapter: createAdapterClass({ oidc: store.oidc, clients: services.clients, refreshReuseGraceSeconds: config.refreshReuseGraceSeconds }),
      logger,
    });
    host.watch();
    const app = createApp({ config, logger, host, accounts: services.accounts });
    server.on('request', app.callback());
    logger.info({ issuer: config.issuer, store: store.kind, port }, `Tessera is listening; discovery at ${config.issuer}/.well-known/openid-configuration`);

    let closing: Promise<void> | undefined;
    return {
      url: `http://localhost:${port}`,
      issuer: config.issuer,
      port,
      host,
      close() {
        closing ??= (async () => {
          host.stop();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          });
          await store.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    server.close();
    await store.close();
    throw error;
  }
}
