/**
 * Email verification: registration sends a single-use link; following it (and confirming with a
 * button, so mail scanners that fetch links cannot use it up) marks the address verified, which
 * makes the `email_verified` claim true. Signing in does not wait for it (Auth0's default): an
 * unverified address is a claim relying parties can see and act on.
 */
import type { Locale } from '../i18n/locales.ts';
import type { AccountRepository, Account } from '../store/port.ts';
import { verificationMessage } from './account-mail.ts';
import { LinkTokens } from './link-tokens.ts';
import type { Mailer } from './mailer.ts';

export const VERIFY_EMAIL_PATH = '/email/verify';

export interface EmailVerificationDependencies {
  accounts: AccountRepository;
  tokens: LinkTokens;
  mailer: Mailer;
  issuer: string;
}

export type VerificationResult = { verified: true; account: Account } | { verified: false };

export class EmailVerification {
  readonly #deps: EmailVerificationDependencies;

  constructor(deps: EmailVerificationDependencies) {
    this.#deps = deps;
  }

  /** Sends a verification link to the account's address (nothing for an address already verified), in `locale`. */
  async send(account: Account, locale?: Locale): Promise<void> {
    if (account.emailVerified) return;
    const { tokens, mailer, issuer } = this.#deps;
    const token = await tokens.issue({ accountId: account.sub, email: account.email });
    const link = `${issuer}${VERIFY_EMAIL_PATH}?token=${encodeURIComponent(token)}`;
    await mailer.send(verificationMessage(account.email, link, tokens.ttlSeconds, locale));
  }

  /** True when the link is live: the confirmation page is shown, nothing is used up yet. */
  async isLive(token: string): Promise<boolean> {
    return (await this.#deps.tokens.peek(token)) !== undefined;
  }

  /** Uses the link up and marks the address verified, if the account still has that address. */
  async verify(token: string): Promise<VerificationResult> {
    const { accounts, tokens } = this.#deps;
    const payload = await tokens.redeem(token);
    if (!payload) return { verified: false };
    const account = await accounts.findBySub(payload.accountId);
    if (!account || account.email !== payload.email) return { verified: false };
    if (!account.emailVerified) await accounts.update(account.sub, { emailVerified: true });
    return { verified: true, account: { ...account, emailVerified: true } };
  }
}
