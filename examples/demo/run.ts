/**
 * `npm run demo`: Tessera on PORT (3000) with its own DATA_DIR (./data/demo), a demo client and a
 * demo account seeded, and the sample relying party on http://localhost:3001. Open the RP, click
 * "Sign in with Tessera", and follow the whole flow in a browser.
 *
 * Everything generated (the client secret, the account password, Tessera's keys and secret) is kept
 * in DATA_DIR, so a second run reuses it. Delete DATA_DIR to start over.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import { PasswordHasher } from '../../src/domain/password.ts';
import { isAppError } from '../../src/errors.ts';
import { startServer } from '../../src/main.ts';
import { buildServices } from '../../src/services.ts';
import { openStore } from '../../src/store/open-store.ts';
import { startDemoRp } from './rp.ts';

export const DEMO_CLIENT_ID = 'tessera-demo';
export const DEMO_EMAIL = 'demo@example.com';

function setting(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Reads a generated value kept in DATA_DIR, or generates and keeps it (owner-only permissions). */
function keptSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const value = randomBytes(32).toString('base64url');
  writeFileSync(file, value + '\n', { mode: 0o600 });
  return value;
}

/**
 * The demo client is a static client in a CONFIG_DIR of the demo's own: written on every run (so
 * the RP port can change), with a secret generated once and kept alongside.
 */
function writeDemoClient(configDir: string, dataDir: string, rpPort: number): string {
  mkdirSync(configDir, { recursive: true });
  const clientSecret = keptSecret(path.join(dataDir, 'demo-client-secret'));
  const rp = `http://localhost:${rpPort}`;
  const clients = [{
    client_id: DEMO_CLIENT_ID,
    client_secret: clientSecret,
    client_name: 'Tessera demo app',
    client_uri: `${rp}/`,
    redirect_uris: [`${rp}/callback`],
    post_logout_redirect_uris: [`${rp}/`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }];
  writeFileSync(path.join(configDir, 'clients.json'), JSON.stringify(clients, null, 2) + '\n', { mode: 0o600 });
  return clientSecret;
}

/** Creates the demo account, or makes an existing one usable again with the kept password. */
async function seedDemoAccount(config: Config, password: string): Promise<void> {
  const store = await openStore(config);
  try {
    const { accounts } = buildServices(config, store);
    const existing = await accounts.findByEmail(DEMO_EMAIL);
    if (!existing) {
      await accounts.register({ email: DEMO_EMAIL, password, name: 'Demo Person', givenName: 'Demo', familyName: 'Person' });
      return;
    }
    try {
      await accounts.authenticate(DEMO_EMAIL, password);
    } catch (error) {
      if (!isAppError(error, 'ERR_INVALID_CREDENTIALS')) throw error;
      // Someone changed, disabled or locked it: the demo promises this password works.
      const passwordHash = await new PasswordHasher(config.argon2).hash(password);
      await store.accounts.update(existing.sub, { passwordHash, disabled: false, failedSignIns: 0, lockouts: 0, lockedUntil: null });
    }
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const dataDir = path.resolve(setting('DATA_DIR') ?? './data/demo');
  const configDir = path.join(dataDir, 'demo-config');
  const rpPort = Number(setting('DEMO_RP_PORT') ?? 3001);
  if (!Number.isInteger(rpPort) || rpPort < 1 || rpPort > 65_535) {
    throw new Error('DEMO_RP_PORT must be a port number between 1 and 65535');
  }
  mkdirSync(dataDir, { recursive: true });

  const clientSecret = writeDemoClient(configDir, dataDir, rpPort);
  const password = keptSecret(path.join(dataDir, 'demo-password'));

  const config = loadConfig({
    ...process.env,
    DATA_DIR: dataDir,
    CONFIG_DIR: configDir,
    // JSON request logs would bury the instructions below; LOG_LEVEL=info brings them back.
    LOG_LEVEL: setting('LOG_LEVEL') ?? 'warn',
  });
  await seedDemoAccount(config, password);

  const server = await startServer(config);
  let rp;
  try {
    rp = await startDemoRp({ issuer: server.issuer, clientId: DEMO_CLIENT_ID, clientSecret, port: rpPort });
  } catch (error) {
    await server.close();
    throw error;
  }

  process.stdout.write(`
  Tessera (OpenID Provider)  ${server.issuer}
  Demo app (relying party)   ${rp.url}   <- open this in your browser

  Demo account   ${DEMO_EMAIL}
  Password       ${password}
  (or use "Create an account" on the sign-in page)

  Data kept in ${dataDir}; delete it to start over. Press Ctrl-C to stop.

`);

  let stopping = false;
  const stop = () => {
    if (stopping) {
      process.stderr.write('Stopping immediately.\n');
      process.exit(130);
    }
    stopping = true;
    process.stdout.write('Stopping the demo app and Tessera...\n');
    Promise.all([rp.close(), server.close()]).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`demo: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(error.problems.map((problem) => `Configuration error: ${problem}`).join('\n') + '\n');
  } else {
    const code = (error as NodeJS.ErrnoException).code;
    const hint = code === 'EADDRINUSE' ? ' (is another demo or server running? set PORT or DEMO_RP_PORT)' : '';
    process.stderr.write(`demo: ${(error as Error).message}${hint}\n`);
  }
  process.exit(1);
});
