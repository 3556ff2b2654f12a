/**
 * The sign-in page: the login prompt's page, offering every first factor (the password form, a
 * passkey button). A first factor that refuses shows this page again with its reason.
 */
import type { Context } from 'koa';

import { renderPage } from '../../http/render.ts';
import type { Interaction, InteractionToolkit } from '../toolkit.ts';

export interface SignInPageValues {
  email?: string;
  error?: string;
}

export type ShowSignInPage = (ctx: Context, interaction: Interaction, values?: SignInPageValues) => Promise<void>;

export function signInPage({ clientOf }: Pick<InteractionToolkit, 'clientOf'>): ShowSignInPage {
  return async function showSignInPage(ctx, interaction, values = {}) {
    await renderPage(ctx, 'login', {
      title: 'Sign in',
      uid: interaction.uid,
      client: await clientOf(interaction),
      email: values.email ?? (typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : ''),
      error: values.error,
    });
  };
}
