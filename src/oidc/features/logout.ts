/** RP-initiated logout: the confirmation page and the signed-out page are Tessera's own. */
import type { KoaContextWithOIDC } from 'oidc-provider';

import { appLink } from '../../http/error-page.ts';
import type { Slice } from './feature.ts';

export const logout: Slice = {
  name: 'RP-initiated logout',
  paths: [
    { path: '/session/end', fastPath: false },
    { path: '/session/end/confirm', fastPath: false },
    { path: '/session/end/success', fastPath: false },
  ],
  pages: ['logout', 'logged-out'],
  configure: ({ render }) => ({
    features: {
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx: KoaContextWithOIDC, form: string) {
          await render(ctx, 'logout', {
            form,
            clientName: ctx.oidc.client?.clientName,
          });
        },
        async postLogoutSuccessSource(ctx: KoaContextWithOIDC) {
          await render(ctx, 'logged-out', {
            clientName: ctx.oidc.client?.clientName,
            app: appLink(ctx.oidc.client),
          });
        },
      },
    },
  }),
};
