/**
 * What the second-factor steps (prove, enrol) share: the sign-in a first factor left waiting in the
 * store under the interaction's uid (PendingSignIns), so no step trusts anything the browser sends
 * about who is signing in, and the one way such a sign-in completes.
 */
import type { Context } from 'koa';

import type { AccountService } from '../../domain/accounts.ts';
import type { Assurance } from '../../domain/mfa/assurance.ts';
import type { PendingSignIn, SecondFactorService } from '../../domain/second-factors.ts';
import { AppError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Account } from '../../store/port.ts';
import { STAGE_PATHS } from '../after-first-factor.ts';
import { signingIn, type Interaction, type InteractionToolkit } from '../toolkit.ts';

export interface PendingStep {
  interaction: Interaction;
  signIn: PendingSignIn;
  account: Account;
}

export interface PendingSteps {
  /** The interaction and its pending sign-in at the given stage, or (undefined) a redirect back to the start. */
  loadPending(ctx: Context, stage: PendingSignIn['stage']): Promise<PendingStep | undefined>;
  /** The sign-in is complete: the pending record is taken (once), and oidc-provider gets the login. */
  complete(ctx: Context, interaction: Interaction, assurance: Assurance, how: string): Promise<void>;
}

export function pendingSteps({ toolkit, accounts, secondFactors, logger }: {
  toolkit: InteractionToolkit;
  accounts: AccountService;
  secondFactors: SecondFactorService;
  logger: Logger;
}): PendingSteps {
  const { loadInteraction, finish, redirect, path } = toolkit;
  const pending = secondFactors.pendingSignIns;

  async function loadPending(ctx: Context, stage: PendingSignIn['stage']): Promise<PendingStep | undefined> {
    const interaction = await loadInteraction(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (!signingIn(interaction)) throw new AppError('ERR_INVALID_INPUT', 'You are already signed in.');
    const signIn = await pending.find(interaction.uid);
    const account = signIn && await accounts.findBySub(signIn.sub);
    // The passkey script asks for JSON: a redirect to an HTML page would only confuse it.
    if ((!signIn || !account || account.disabled || signIn.stage !== stage) && ctx.accepts('html', 'json') === 'json') {
      throw new AppError('ERR_INTERACTION_EXPIRED', 'This step of the sign-in expired. Reload the page and start again.');
    }
    if (!signIn || !account || account.disabled) {
      if (signIn) await pending.discard(interaction.uid);
      redirect(ctx, path(interaction.uid));
      return undefined;
    }
    if (signIn.stage !== stage) {
      redirect(ctx, path(interaction.uid, STAGE_PATHS[signIn.stage]));
      return undefined;
    }
    return { interaction, signIn, account };
  }

  async function complete(ctx: Context, interaction: Interaction, assurance: Assurance, how: string): Promise<void> {
    const signIn = await pending.take(interaction.uid);
    if (!signIn) throw new AppError('ERR_INTERACTION_EXPIRED', 'This sign-in already finished or expired. Go back to the app and start again.');
    logger.info({ sub: signIn.sub, clientId: interaction.params.client_id, amr: assurance.amr }, `sign-in succeeded with ${how}`);
    await finish(ctx, { login: { accountId: signIn.sub, ...assurance } });
  }

  return { loadPending, complete };
}
