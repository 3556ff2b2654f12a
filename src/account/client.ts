/** The account page's own client, defined beside the provider's configuration that registers it. */
export { ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID, accountClientMetadata } from '../oidc/account-client.ts';
