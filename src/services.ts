/**
 * Builds the domain services from configuration and an open store. The server and the CLI both
 * call this, so they share one set of rules for accounts, clients and keys.
 */
import type { Config } from './config.ts';
import { AccountService } from './domain/accounts.ts';
import { ClientService } from './domain/clients.ts';
import { KeyService } from './domain/keys.ts';
import { PasswordHasher } from './domain/password.ts';
import { loadMasterSecret, type MasterSecret } from './domain/secrets.ts';
import type { Store } from './store/port.ts';

export interface Services {
  readonly accounts: AccountService;
  readonly clients: ClientService;
  readonly keys: KeyService;
  readonly secret: MasterSecret;
}

/** Seconds of clock skew allowed for validators when deciding how long a retired key stays published. */
const CLOCK_SKEW_SECONDS = 60;

export function buildServices(config: Config, store: Store): Services {
  const secret = loadMasterSecret(config);
  const retainSeconds = Math.max(config.ttl.idToken, config.ttl.accessToken) + CLOCK_SKEW_SECONDS;
  return {
    accounts: new AccountService(store.accounts, new PasswordHasher(config.argon2)),
    clients: new ClientService(store.clients, store.revisions, config.staticClients),
    keys: new KeyService(store.keys, secret.value, retainSeconds),
    secret,
  };
}
