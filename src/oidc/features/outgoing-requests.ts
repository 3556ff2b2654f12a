/**
 * oidc-provider's outgoing requests (client metadata documents, jwks_uri) go through its
 * SSRF-protecting dispatcher, which refuses loopback and special-use addresses whatever a name
 * resolves to. ALLOW_LOOPBACK_FETCHES (refused in production by config.ts) leaves that dispatcher
 * out, so a test or a developer's machine, where everything runs on localhost, can serve those
 * documents. (Back-channel logout tokens are not among them: Tessera sends those itself, see
 * domain/backchannel-logout.ts, with its own rule for loopback receivers.)
 */
import type { Slice } from './feature.ts';

export const outgoingRequests: Slice = {
  name: 'outgoing requests',
  configure: ({ config }) => (config.selfRegistration.allowLoopbackFetches && config.env !== 'production'
    ? {
      fetch(url, options) {
        const { dispatcher: _ssrfGuard, ...rest } = options as RequestInit & { dispatcher?: unknown };
        return globalThis.fetch(url, rest);
      },
    }
    : {}),
};
