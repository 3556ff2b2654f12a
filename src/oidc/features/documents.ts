/** Discovery and the JWKS: public, rarely changing, fetched by every RP and resource server. */
import { SUPPORTED_LOCALES } from '../../i18n/locales.ts';
import type { Slice } from './feature.ts';

export const documents: Slice = {
  name: 'discovery and JWKS',
  paths: [
    { path: '/jwks', fastPath: true, publicDocument: true },
    { path: '/.well-known/openid-configuration', fastPath: true, publicDocument: true },
  ],
  // The languages of every page and mail (locales/): an RP may ask for one with `ui_locales`.
  configure: () => ({ discovery: { ui_locales_supported: [...SUPPORTED_LOCALES] } }),
};
