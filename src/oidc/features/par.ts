/** Pushed authorization requests (RFC 9126): the client authenticates when it pushes; pushing stays optional. */
import type { Slice } from './feature.ts';

export const pushedAuthorizationRequests: Slice = {
  name: 'pushed authorization requests',
  paths: [{ path: '/request', fastPath: true, authenticatesClient: true, mtlsAlias: 'pushed_authorization_request_endpoint' }],
  configure: () => ({ features: { pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false } } }),
};
