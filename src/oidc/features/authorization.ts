/**
 * The authorization endpoint, where a person signs in and consents (Tessera's interaction pages):
 * code flow only, PKCE for every client, exact redirect URIs, and Tessera's prompts. Its routes are
 * where an `offline_access` request asks for consent.
 */
import { interactionPolicy } from 'oidc-provider';

import { ACR_MULTI_FACTOR, multiFactorRequired, SECOND_FACTOR_REASON } from '../../domain/mfa/assurance.ts';
import { metadataOf, type ClientLike } from '../client-metadata.ts';
import type { Slice } from './feature.ts';

/**
 * The default login and consent prompts, plus:
 * - `prompt=create` (OpenID Connect "Initiating User Registration") is not built into oidc-provider:
 *   a requestable prompt named `create` opens the interaction on the registration page, and is
 *   satisfied by the registration result. It goes first so it wins over `login`.
 * - a session whose account was disabled or deleted must sign in again (oidc-provider would
 *   otherwise carry on with a session that has no account behind it).
 * - a session signed in with one factor is asked for a second when the client requires it
 *   (`tessera_require_mfa`) or the request accepts only `urn:tessera:loa:2` (interaction/after-first-factor.ts
 *   then goes straight to the second factor, or to enrolment, without asking for the password again).
 */
function interactionPrompts(): interactionPolicy.Prompt[] {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.unshift(new Check('account_unavailable', 'the signed-in account is no longer available', (ctx) =>
    ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT));
  policy.get('login')!.checks.push(new Check(SECOND_FACTOR_REASON, 'a second factor is required', 'login_required', (ctx) =>
    ctx.oidc.session?.accountId && ctx.oidc.acr !== ACR_MULTI_FACTOR
      && multiFactorRequired(ctx.oidc.client && metadataOf(ctx.oidc.client as unknown as ClientLike) as Record<string, unknown>, ctx.oidc.params as Record<string, unknown>)
      ? Check.REQUEST_PROMPT
      : Check.NO_NEED_TO_PROMPT));
  policy.unshift(new Prompt({ name: 'create', requestable: true }));
  return policy;
}

export const authorization: Slice = {
  name: 'authorization endpoint',
  paths: [{ path: '/auth', fastPath: false }, { path: '/auth/:uid', fastPath: false }],
  interactionRoutes: ['authorization', 'resume'],
  configure: () => ({
    responseTypes: ['code'],
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    discovery: {
      // Not advertised by oidc-provider itself; `create` is ours (see interactionPrompts).
      prompt_values_supported: ['none', 'login', 'consent', 'create'],
    },
    interactions: {
      policy: interactionPrompts(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
  }),
};
