/** Discovery and the JWKS: public, rarely changing, fetched by every RP and resource server. */
import type { Slice } from './feature.ts';

export const documents: Slice = {
  name: 'discovery and JWKS',
  paths: [
    { path: '/jwks', fastPath: true, publicDocument: true },
    { path: '/.well-known/openid-configuration', fastPath: true, publicDocument: true },
  ],
};
