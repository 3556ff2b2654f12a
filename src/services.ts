/**
 * Builds the domain services from configuration and an open store. The server and the CLI both
 * call this, so they share one set of rules for accounts, clients and keys.
 */
import type { Config } from './config.ts';
import { AccountService } from './domain/accounts.ts';
import { ClientService } from './domain/clients.ts';
import { KeyService } from './domain/keys.ts';
import { createMailer, type Mailer } from './domain/mailer.ts';
import { PasswordHasher } from './domain/password.ts';
import { MAX_RESOURCE_TTL_SECONDS, ResourceService } from './domain/resources.ts';
import { loadMasterSecret, type MasterSecret } from './domain/secrets.ts';
import type { Store } from './store/port.ts';

export interface Services {
  readonly accounts: AccountService;
  readonly clients: ClientService;
  readonly resources: ResourceService;
  readonly keys: KeyService;
  readonly mailer: Mailer;
  readonly secret: MasterSecret;
}

/** Seconds of clock skew allowed for validators when deciding how long a retired key stays published. */
const CLOCK_SKEW_SECONDS = 60;

export function buildServices(config: Config, store: Store): Services {
  const secret = loadMasterSecret(config);
  // A retired key stays published while anything it signed may still be presented.
  const retainSeconds = Math.max(config.ttl.idToken, config.ttl.accessToken, MAX_RESOURCE_TTL_SECONDS) + CLOCK_SKEW_SECONDS;
  // Clients check their resources exist, and resources create their own clients: tie the knot lazily.
  let resources: ResourceService | undefined;
  const clients = new ClientService(store.clients, store.revisions, config.staticClients, (audience) => resources!.find(audience));
  resources = new ResourceService(store.resources, store.revisions, clients, config.staticResources);
  return {
    accounts: new AccountService(store.accounts, new PasswordHasher(config.argon2)),
    clients,
    resources,
    keys: new KeyService(store.keys, secret.value, retainSeconds),
    mailer: createMailer(config.mail, config.dataDir),
    secret,
  };
}
