/** The userinfo endpoint (`/me`), called with an access token, on the mTLS listener by certificate-bound clients. */
import type { Slice } from './feature.ts';

export const userinfo: Slice = {
  name: 'userinfo',
  paths: [{ path: '/me', fastPath: true, mtlsAlias: 'userinfo_endpoint' }],
  configure: () => ({ features: { userinfo: { enabled: true } } }),
};
