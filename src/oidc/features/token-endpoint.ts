/**
 * The token endpoint and how clients authenticate to it: every method Tessera accepts, the client
 * credentials grant, and rotating refresh tokens issued only for `offline_access`.
 */
import type { Slice } from './feature.ts';

export const tokenEndpoint: Slice = {
  name: 'token endpoint',
  paths: [{ path: '/token', fastPath: true, authenticatesClient: true, mtlsAlias: 'token_endpoint' }],
  configure: () => ({
    // tls_client_auth and self_signed_tls_client_auth must be listed before any client may use them (mtls.ts).
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'],
    rotateRefreshToken: true,
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    // RFC 9068 and RFC 7662 both name the client as the subject of a client credentials token;
    // oidc-provider puts it in JWTs but leaves it out of introspection answers for opaque ones.
    // Not async: it runs at every token issued, and oidc-provider takes a plain value as well.
    extraTokenClaims(_ctx, token) {
      return token.kind === 'ClientCredentials' ? { sub: token.clientId } : undefined;
    },
    features: {
      clientCredentials: { enabled: true },
    },
  }),
};
