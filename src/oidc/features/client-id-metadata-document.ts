/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, oidc-provider's
 * experimental `clientIdMetadataDocument`, draft-02), the MCP specification's preferred way for an
 * agent to name itself: its client_id is an https URL, and the document there is its metadata.
 * CLIENT_ID_METADATA_DOCUMENTS=on turns it on; discovery then says
 * `client_id_metadata_document_supported: true`.
 *
 * - which hosts are fetched: an allow-list, or a deny-list (CLIENT_ID_METADATA_DOCUMENTS_ALLOWED_HOSTS /
 *   _DENIED_HOSTS; `*.example.com` matches subdomains), never both;
 * - how much is read (CLIENT_ID_METADATA_DOCUMENTS_MAX_BYTES) and how long a document is kept
 *   (CLIENT_ID_METADATA_DOCUMENTS_CACHE_SECONDS bounds what its Cache-Control asks);
 * - such a client meets the same policy as a dynamically registered one (registration.ts) and is
 *   marked `metadata_document`, which the consent page shows;
 * - loopback documents only with ALLOW_LOOPBACK_FETCHES, refused in production (config.ts).
 */
import type { Configuration } from 'oidc-provider';

import type { Config } from '../../config.ts';
import type { Slice } from './feature.ts';

/** The draft oidc-provider 9.13 implements; experimental features need it acknowledged exactly. */
export const METADATA_DOCUMENT_DRAFT = 'draft-02';

type Features = NonNullable<Configuration['features']>;

export function hostListed(host: string, patterns: readonly string[]): boolean {
  const name = host.toLowerCase();
  return patterns.some((pattern) => (pattern.startsWith('*.') ? name.endsWith(pattern.slice(1)) : name === pattern));
}

/** Whether a document at `clientId` may be fetched under the configured host lists. */
export function metadataDocumentFetchAllowed(clientId: string, config: Config['selfRegistration']): boolean {
  const url = URL.parse(clientId);
  if (!url) return false;
  const { metadataDocumentAllowedHosts: allowed, metadataDocumentDeniedHosts: denied } = config;
  if (allowed.length) return hostListed(url.hostname, allowed) || hostListed(url.host, allowed);
  return !(hostListed(url.hostname, denied) || hostListed(url.host, denied));
}

/** A client_id that names a metadata document (not one of the operator's, which are never URLs). */
export function isMetadataDocumentId(clientId: unknown): boolean {
  return typeof clientId === 'string' && clientId.startsWith('https://');
}

function metadataDocumentFeatures(config: Config): Pick<Features, 'clientIdMetadataDocument'> {
  const settings = config.selfRegistration;
  if (!settings.metadataDocuments) return { clientIdMetadataDocument: { enabled: false } };
  return {
    clientIdMetadataDocument: {
      enabled: true,
      ack: METADATA_DOCUMENT_DRAFT,
      async allowFetch(_ctx, clientId) {
        return metadataDocumentFetchAllowed(clientId, settings);
      },
      cacheDuration: { ...settings.metadataDocumentCacheSeconds },
    },
  };
}

/**
 * How much of a document is read. oidc-provider's other fetch limits (jwks_uri, sector identifiers)
 * keep their defaults.
 */
function metadataDocumentLimits(config: Config): Pick<Configuration, 'fetchResponseBodyLimits'> {
  return {
    fetchResponseBodyLimits: {
      'client_id metadata document': config.selfRegistration.metadataDocumentMaxBytes,
      jwks_uri: Infinity,
      sector_identifier_uri: Infinity,
    } as NonNullable<Configuration['fetchResponseBodyLimits']>,
  };
}

export const clientIdMetadataDocuments: Slice = {
  name: 'client ID metadata documents',
  configure: ({ config }) => ({
    ...(config.selfRegistration.metadataDocuments && metadataDocumentLimits(config)),
    features: metadataDocumentFeatures(config),
  }),
};
