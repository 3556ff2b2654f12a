/**
 * Checks client metadata by asking oidc-provider itself, with Tessera's configuration: the same
 * schema (`Client.validate`, reached through internals.ts) it applies when it loads a client at
 * each request, so a client it would refuse then (a web client with `com.example.app:/cb`:
 * "redirect_uris must only contain web uris") is refused when it is created instead, with that
 * reason. The CLI, the admin API and the server all create clients through ClientService, which is
 * handed this check (services.ts).
 *
 * The provider built for it never listens, stores or signs anything. It holds throwaway keys of the
 * families Tessera signs with (which signing algorithms a client may name depends on them), so the
 * check reads nothing from the store and works wherever the CLI runs; built once per process.
 */
import { errors, Provider } from 'oidc-provider';

import type { Config } from '../config.ts';
import type { AccountService } from '../domain/accounts.ts';
import type { ClientMetadataCheck } from '../domain/clients.ts';
import { throwawayKeyMaterial } from '../domain/keys.ts';
import type { ResourceService } from '../domain/resources.ts';
import type { OidcStore } from '../store/port.ts';
import type { AdapterConstructor } from './adapter.ts';
import { buildConfiguration } from './configuration.ts';
import { validateClientMetadata } from './internals.ts';

export interface ClientMetadataCheckDependencies {
  config: Config;
  accounts: AccountService;
  resources: ResourceService;
  adapter: AdapterConstructor;
  oidc: OidcStore;
}

/** This provider never serves a request, so it never renders a page. */
async function rendersNothing(): Promise<void> {
  throw new Error('the provider that checks client metadata serves no pages');
}

export function clientMetadataCheck({ config, accounts, resources, adapter, oidc }: ClientMetadataCheckDependencies): ClientMetadataCheck {
  let provider: Promise<Provider> | undefined;
  // No static clients: those are checked at startup (provider-host.ts); only the client at hand is checked here.
  const validatingProvider = async () => new Provider(config.issuer, buildConfiguration({
    config, accounts, resources, keys: await throwawayKeyMaterial(), adapter, oidc, staticClients: [], mtlsBaseUrl: undefined, render: rendersNothing,
  }));

  return async function checkWithProvider(metadata) {
    provider ??= validatingProvider();
    try {
      await validateClientMetadata(await provider, metadata);
      return undefined;
    } catch (error) {
      if (error instanceof errors.InvalidClientMetadata) return error.error_description ?? error.message;
      throw error;
    }
  };
}
