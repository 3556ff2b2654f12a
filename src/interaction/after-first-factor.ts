/**
 * Where every first factor ends (a password, a passkey; later an upstream provider or an email
 * link): `afterFirstFactor` applies the account's and the client's second-factor policy, then
 * either finishes the sign-in or holds it (PendingSignIns) for the second-factor step or for
 * enrolment. Consent and the return to the app follow from oidc-provider's prompts either way.
 *
 * `stepUp` is the other way in: a live session that only lacks a second factor goes straight to it.
 */
import type { Context } from 'koa';

import type { AccountService } from '../domain/accounts.ts';
import { ACR_MULTI_FACTOR, multiFactorRequired, passwordOnly, SECOND_FACTOR_REASON, type Assurance } from '../domain/mfa/assurance.ts';
import type { PendingSignIn, SecondFactorService } from '../domain/second-factors.ts';
import type { Logger } from '../log.ts';
import type { Account } from '../store/port.ts';
import type { Interaction, InteractionToolkit } from './toolkit.ts';

/** Login-prompt reasons a second factor alone satisfies, when the session already has an account. */
const STEP_UP_REASONS = new Set([SECOND_FACTOR_REASON, 'essential_acr', 'essential_acrs']);

/** Where each stage of a pending sign-in is shown. */
export const STAGE_PATHS: Record<PendingSignIn['stage'], string> = {
  'second-factor': '/second-factor',
  'enrol': '/enrol',
  'done': '/enrol/recovery-codes',
};

export interface AfterFirstFactor {
  /**
   * A first factor proved `assurance` for `account`: finish, or continue to the second factor or to
   * enrolment. An assurance that is already multi-factor (a passkey with user verification) finishes.
   */
  afterFirstFactor(ctx: Context, interaction: Interaction, account: Account, assurance: Assurance): Promise<void>;
  /** On the login prompt: when only a second factor is missing from a live session, go straight to it. Returns true if it answered. */
  stepUp(ctx: Context, interaction: Interaction): Promise<boolean>;
}

export interface AfterFirstFactorDependencies {
  toolkit: InteractionToolkit;
  accounts: AccountService;
  secondFactors: SecondFactorService;
  logger: Logger;
}

export function afterFirstFactorStep({ toolkit, accounts, secondFactors, logger }: AfterFirstFactorDependencies): AfterFirstFactor {
  const { provider, finish, redirect, path } = toolkit;
  const pending = secondFactors.pendingSignIns;

  async function requiresMultiFactor(interaction: Interaction): Promise<boolean> {
    const client = await provider().Client.find(String(interaction.params.client_id));
    return multiFactorRequired(client?.metadata() as Record<string, unknown> | undefined, interaction.params);
  }

  async function continueWith(ctx: Context, interaction: Interaction, account: Account, earlier: string[]): Promise<void> {
    const stage = secondFactors.hasSecondFactor(account) ? 'second-factor' : 'enrol';
    await pending.hold(interaction.uid, { sub: account.sub, amr: earlier, stage });
    redirect(ctx, path(interaction.uid, STAGE_PATHS[stage]));
  }

  async function afterFirstFactor(ctx: Context, interaction: Interaction, account: Account, assurance: Assurance): Promise<void> {
    if (assurance.acr === ACR_MULTI_FACTOR) {
      // An earlier password on this page may have left a sign-in waiting for its second factor.
      await pending.discard(interaction.uid);
      return finish(ctx, { login: { accountId: account.sub, ...assurance } });
    }
    if (secondFactors.hasSecondFactor(account) || await requiresMultiFactor(interaction)) {
      return continueWith(ctx, interaction, account, assurance.amr);
    }
    await finish(ctx, { login: { accountId: account.sub, ...assurance } });
  }

  async function stepUp(ctx: Context, interaction: Interaction): Promise<boolean> {
    const { reasons } = interaction.prompt;
    const sub = interaction.session?.accountId;
    if (!sub || !reasons.includes(SECOND_FACTOR_REASON) || reasons.some((reason) => !STEP_UP_REASONS.has(reason))) return false;
    const account = await accounts.findBySub(sub);
    if (!account || account.disabled) return false;
    logger.info({ sub, clientId: interaction.params.client_id }, 'second factor required: stepping up the session');
    await continueWith(ctx, interaction, account, interaction.session?.amr ?? passwordOnly().amr);
    return true;
  }

  return { afterFirstFactor, stepUp };
}
