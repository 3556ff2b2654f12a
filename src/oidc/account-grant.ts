/**
 * Consent is remembered per account and client, not per browser session: oidc-provider on its own
 * finds a grant only through the session that made it (`session.grantIdFor(clientId)`), so a second
 * browser, or the same one after signing out, was asked again for what the person had already
 * allowed. The grant is looked up by account in the store (an indexed query on both backends) and
 * handed to oidc-provider, whose consent checks then decide whether it covers the request; what it
 * does not cover is asked for and added to the same grant. Revoking the app on the account page
 * deletes these grants (account/activity.ts), so the next sign-in asks again.
 */
import type { Provider } from 'oidc-provider';

import { isStoreUnavailable } from '../store/outage.ts';
import type { OidcStore } from '../store/port.ts';
import { TemporarilyUnavailable } from './adapter.ts';

type Grant = InstanceType<Provider['Grant']>;

/** The newest live grant the account gave the client, loaded through oidc-provider's model (which checks expiry). */
export async function findAccountGrant(provider: Provider, oidc: OidcStore, accountId: string, clientId: string): Promise<Grant | undefined> {
  let found: Awaited<ReturnType<OidcStore['findByAccountId']>>;
  try {
    found = await oidc.findByAccountId('Grant', accountId);
  } catch (error) {
    // Read past the adapter, so converted here as the adapter does: 503 temporarily_unavailable, not a 500.
    throw isStoreUnavailable(error) ? new TemporarilyUnavailable(error) : error;
  }
  const records = found
    .filter(({ payload }) => payload.accountId === accountId && payload.clientId === clientId)
    .sort((a, b) => Number(b.payload.iat ?? 0) - Number(a.payload.iat ?? 0));
  for (const { id } of records) {
    const grant = await provider.Grant.find(id);
    if (grant && grant.accountId === accountId && grant.clientId === clientId) return grant;
  }
  return undefined;
}
