/**
 * Mails the owner of an account whenever a second factor or passkey is added or removed (from the
 * account page, during a sign-in's enrolment, or by an operator), whichever way it happened: the
 * notices follow the security events, so no path that changes a factor can forget to send one.
 */
import type { AccountRepository } from '../store/port.ts';
import type { Locale } from '../i18n/locales.ts';
import { factorChangedMessage, type FactorInWords } from './account-mail.ts';
import type { SecurityEvent, SecurityEvents } from './events.ts';
import type { Mailer } from './mailer.ts';

const CHANGES: Record<string, boolean> = {
  'second_factor.added': true,
  'passkey.added': true,
  'second_factor.removed': false,
  'passkey.removed': false,
};

/** The factor, from what the event says (never anything the person typed, apart from a passkey's own name). */
function describe(event: SecurityEvent): FactorInWords {
  if (event.type.startsWith('passkey.')) {
    return typeof event.details?.name === 'string' && event.details.name ? { kind: 'passkey', name: event.details.name } : { kind: 'passkey' };
  }
  const method = event.details?.method;
  return { kind: method === 'totp' || method === 'email-code' || method === 'all' ? method : 'other' };
}

export function notifyFactorChanges(events: SecurityEvents, accounts: Pick<AccountRepository, 'findBySub'>, mailer: Mailer, resetLink: string, locale: Locale, onError: (error: unknown, sub: string) => void): void {
  events.on((event) => {
    const added = CHANGES[event.type];
    const sub = event.sub;
    if (added === undefined || sub === undefined) return;
    const at = new Date();
    // In the background: listeners must not wait, and a mail server's trouble must not fail the change.
    void (async () => {
      const account = await accounts.findBySub(sub);
      if (!account) return;
      await mailer.send(factorChangedMessage(account.email, { added, what: describe(event), at }, resetLink, locale));
    })().catch((error: unknown) => onError(error, sub));
  });
}
