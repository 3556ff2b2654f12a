/**
 * OpenID Connect Back-Channel Logout 1.0: clients may register `backchannel_logout_uri` (and
 * `backchannel_logout_session_required`), discovery says so, and every ID token carries `sid`
 * (oidc/internals.ts, sidInEveryIdToken) so an app can match a logout token to its session.
 *
 * The tokens themselves are Tessera's (domain/backchannel-logout.ts): oidc-provider's own sending
 * at RP-initiated logout is routed there (internals.ts, queuedBackchannelLogout), so that logout
 * page does not wait for the apps' servers either, and the sessions Tessera ends itself (account
 * page, password reset, `users disable`, admin API) are sent the same way. Since Tessera sends
 * them, oidc-provider's refusal of loopback addresses for outgoing requests does not apply:
 * Tessera's sender allows loopback receivers outside production and refuses them in production.
 */
import type { Slice } from './feature.ts';

export const backchannelLogout: Slice = {
  name: 'back-channel logout',
  configure: () => ({ features: { backchannelLogout: { enabled: true } } }),
};
