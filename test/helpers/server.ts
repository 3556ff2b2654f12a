/**
 * Starts a real Tessera server for a test: its own temporary DATA_DIR and CONFIG_DIR, an ephemeral
 * port, the embedded store unless a MongoDB URI is given. Nothing of Tessera's is mocked.
 */
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { DestinationStream } from 'pino';

import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/main.ts';
import { openStore } from '../../src/store/open-store.ts';
import { buildServices, type Services } from '../../src/services.ts';
import type { Store } from '../../src/store/port.ts';

export interface TestServerOptions {
  /** Extra environment variables, as an operator would set them. */
  env?: Record<string, string>;
  /** Static clients written to CONFIG_DIR/clients.json. */
  clients?: Record<string, unknown>[];
  /** Reuse a directory (for restart tests); a fresh temporary one otherwise. */
  dataDir?: string;
  /** Where the server's log goes (at LOG_LEVEL, silent unless `env` sets it); stdout otherwise. */
  logDestination?: DestinationStream;
  /**
   * 'defaults' hashes passwords at Tessera's own argon2 defaults, for a test about that cost (timing,
   * rehashing); the cheapest allowed setting otherwise (CHEAP_ARGON2).
   */
  argon2?: 'cheap' | 'defaults';
}

export interface TestServer extends RunningServer {
  readonly config: Config;
  readonly dataDir: string;
  readonly configDir: string;
  /** The same services the CLI would use, on a second connection to the same store. */
  withServices<T>(fn: (services: Services, store: Store) => Promise<T>): Promise<T>;
  /** Environment for spawning `bin/tessera` against this server's store. */
  readonly cliEnv: Record<string, string>;
}

/**
 * Tests drive many flows from one loopback address, so the rate limits are raised far out of the
 * way; a test about rate limits (rate-limits.test.ts) sets its own in `env`.
 */
export const RELAXED_RATE_LIMITS: Readonly<Record<string, string>> = Object.freeze({
  RATE_LIMIT_SIGNIN_PER_IP: '100000/60',
  RATE_LIMIT_SIGNIN_PER_ACCOUNT: '100000/60',
  RATE_LIMIT_REGISTRATION_PER_IP: '100000/60',
  RATE_LIMIT_PASSWORD_RESET_PER_IP: '100000/60',
  RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT: '100000/60',
  RATE_LIMIT_SECOND_FACTOR_PER_ACCOUNT: '100000/60',
  RATE_LIMIT_TOKEN_FAILURES_PER_IP: '100000/60',
  RATE_LIMIT_TOKEN_FAILURES_PER_CLIENT: '100000/60',
  RATE_LIMIT_CLIENT_REGISTRATION_PER_IP: '100000/60',
});

/**
 * The cheapest argon2id setting the configuration accepts (the production limits are not lowered for
 * tests): a tenth of the default cost per hash, for the many tests that register or sign in people
 * but do not measure hashing. Every test server, spawned server and CLI installation gets it unless
 * the test says otherwise.
 */
export const CHEAP_ARGON2: Readonly<Record<string, string>> = Object.freeze({
  ARGON2_MEMORY_KIB: '8192',
  ARGON2_TIME_COST: '1',
  ARGON2_PARALLELISM: '1',
});

export function makeTempDir(prefix = 'tessera-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? makeTempDir();
  const configDir = path.join(dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(path.join(configDir, 'clients.json'), JSON.stringify(options.clients ?? []));
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    PORT: '0',
    DATA_DIR: dataDir,
    CONFIG_DIR: configDir,
    LOG_LEVEL: 'silent',
    STORE_POLL_SECONDS: '1',
    ...RELAXED_RATE_LIMITS,
    ...(options.argon2 === 'defaults' ? {} : CHEAP_ARGON2),
    ...options.env,
  };
  const config = loadConfig(env);
  const server = await startServer(config, createLogger(config.logLevel, options.logDestination));
  const effective = Object.freeze({ ...config, issuer: server.issuer, port: server.port });
  return {
    ...server,
    close: () => server.close(),
    config: effective,
    dataDir,
    configDir,
    cliEnv: { ...env, PORT: String(server.port) },
    async withServices(fn) {
      const store = await openStore(effective);
      const services = buildServices(effective, store);
      try {
        return await fn(services, store);
      } finally {
        await services.close();
        await store.close();
      }
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
