/** Token introspection (RFC 7662) and revocation (RFC 7009), and who may use them on which token. */
import type { ClientLike } from '../client-metadata.ts';
import { metadataOf } from '../client-metadata.ts';
import type { Slice } from './feature.ts';

type TokenLike = { clientId?: string; aud?: string | string[] };

/**
 * A client may introspect or revoke a token issued to itself, and a resource server's own client
 * may introspect and revoke the tokens issued for that resource server. Nobody else may.
 */
function mayInspect(client: ClientLike, token: TokenLike): boolean {
  if (token.clientId === client.clientId) return client.clientAuthMethod !== 'none';
  const audience = metadataOf(client).tessera_resource_server;
  const tokenAudiences = Array.isArray(token.aud) ? token.aud : [token.aud];
  return typeof audience === 'string' && tokenAudiences.includes(audience);
}

export const introspectionAndRevocation: Slice = {
  name: 'introspection and revocation',
  paths: [
    { path: '/token/introspection', fastPath: true, authenticatesClient: true, mtlsAlias: 'introspection_endpoint' },
    { path: '/token/revocation', fastPath: true, authenticatesClient: true, mtlsAlias: 'revocation_endpoint' },
  ],
  configure: () => ({
    features: {
      revocation: {
        enabled: true,
        async allowedPolicy(_ctx, client, token) {
          return mayInspect(client as unknown as ClientLike, token as TokenLike);
        },
      },
      introspection: {
        enabled: true,
        async allowedPolicy(_ctx, client, token) {
          return mayInspect(client as unknown as ClientLike, token as TokenLike);
        },
      },
    },
  }),
};
