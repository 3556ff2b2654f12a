/**
 * The sign-in page: the login prompt's page, offering every first factor (the password form, a
 * passkey button, "Continue with NAME" for each upstream provider). A first factor that refuses shows this page again with its reason.
 */
import type { Context } from 'koa';

import { renderPage } from '../../http/render.ts';
import type { Interaction, InteractionToolkit } from '../toolkit.ts';

export interface SignInPageValues {
  email?: string;
  error?: string;
  /** A field left empty: the catalog key of what to do, shown beside that field. */
  fieldErrors?: { email?: string; password?: string };
  /** The refusal is a rate limit: no field is wrong, the form stays as it was. */
  rateLimited?: boolean;
  /** Something to know before signing in (e.g. why an upstream sign-in needs this account proved first). */
  notice?: string;
}

/** The "Continue with NAME" controls of the upstream providers (first-factors/upstream.ts). */
export type UpstreamControls = (uid: string) => Promise<Array<{ id: string; name: string; action: string }>>;

export type ShowSignInPage = (ctx: Context, interaction: Interaction, values?: SignInPageValues) => Promise<void>;

export function signInPage({ clientOf }: Pick<InteractionToolkit, 'clientOf'>, upstreamControls: UpstreamControls = async () => []): ShowSignInPage {
  return async function showSignInPage(ctx, interaction, values = {}) {
    await renderPage(ctx, 'login', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      email: values.email ?? (typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : ''),
      error: values.error,
      notice: values.notice,
      fieldErrors: values.fieldErrors ?? {},
      rateLimited: values.rateLimited ?? false,
      upstreams: await upstreamControls(interaction.uid),
    });
  };
}
