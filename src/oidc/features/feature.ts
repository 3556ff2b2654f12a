/**
 * A protocol feature as one slice: what oidc-provider needs for it (its configuration fragment) and
 * what Tessera needs around it (its paths, which of them authenticate clients, their mTLS aliases,
 * the routes where a person's interaction runs, the pages it renders). The lists Tessera keeps
 * beside oidc-provider are derived from the slices (features/index.ts), so a new feature cannot
 * forget one of them.
 */
import type { Context } from 'koa';
import type { Configuration } from 'oidc-provider';

import type { Config } from '../../config.ts';
import type { AccountService } from '../../domain/accounts.ts';
import type { ResourceService } from '../../domain/resources.ts';

/** Renders one of Tessera's pages (views/<view>.ejs); passed in, so src/oidc knows no HTTP layer. */
export type RenderPage = (ctx: Context, view: string, locals?: Record<string, unknown>) => Promise<void>;

/** What a slice may use to build its fragment. */
export interface FeatureDependencies {
  config: Config;
  accounts: AccountService;
  resources: ResourceService;
  render: RenderPage;
  /**
   * Discovery's `mtls_endpoint_aliases` (RFC 8705 section 5), derived from every slice's paths;
   * undefined when there is no mTLS listener.
   */
  mtlsEndpointAliases: Record<string, string> | undefined;
  /** Counts one use of a limited initial access token (registration.ts); false when spent. */
  countTokenUse?: ((tokenKey: string, uses: number, seconds: number) => Promise<boolean>) | undefined;
}

export interface ProtocolPath {
  /** The path as oidc-provider routes it by default (Tessera changes no `routes`). */
  readonly path: string;
  /**
   * Called by machines in volume and answered with JSON, never a page: the request skips the page
   * middleware (app.ts, the protocol fast path) and protocol errors there are JSON.
   */
  readonly fastPath: boolean;
  /**
   * The client authenticates here (a secret, an assertion or a certificate): an expired client
   * certificate is refused outright and failures count against the client's rate limits.
   */
  readonly authenticatesClient?: boolean;
  /** Its key in discovery's `mtls_endpoint_aliases`: certificate-using clients call it on the mTLS listener. */
  readonly mtlsAlias?: string;
  /** A public document every RP fetches (discovery, JWKS): answered with Cache-Control so they may cache it. */
  readonly publicDocument?: boolean;
}

export interface Slice {
  readonly name: string;
  /** Its part of oidc-provider's configuration; `features` and `discovery` are merged with the others'. */
  configure?(deps: FeatureDependencies): Partial<Configuration>;
  readonly paths?: readonly ProtocolPath[];
  /**
   * oidc-provider route names (ctx.oidc.route) where a person's interaction starts or resumes: an
   * `offline_access` request there asks for consent (internals.ts, offlineAccessAsksConsent).
   */
  readonly interactionRoutes?: readonly string[];
  /** Views it renders through `render`, checked to exist by the slices' test. */
  readonly pages?: readonly string[];
}
