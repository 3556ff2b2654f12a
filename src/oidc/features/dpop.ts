/** DPoP (RFC 9449): sender-constrained tokens for clients that hold a key but no certificate. */
import type { Slice } from './feature.ts';

export const dpop: Slice = {
  name: 'DPoP',
  configure: () => ({ features: { dPoP: { enabled: true } } }),
};
