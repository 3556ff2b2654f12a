/**
 * Gets a certificate-bound access token from Tessera and calls the example API with it:
 *
 *   ISSUER=https://localhost:3000 CLIENT_ID=... CLIENT_CERT=client.pem CLIENT_KEY=client-key.pem \
 *   CA_FILE=ca.pem RESOURCE=https://orders.example.com SCOPE=orders:read \
 *   API_URL=https://localhost:4000/orders node examples/machine-client/run.ts
 *
 * CA_FILE (the CA of Tessera's and the API's TLS certificates, when private), RESOURCE and SCOPE are
 * optional. Prints the API's status and answer; exits 1 when the token request or the call fails.
 */
import { callApi, getToken, TokenError } from './client.ts';

function setting(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

function required(name: string): string {
  const value = setting(name);
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const caFile = setting('CA_FILE');
const tls = { certFile: required('CLIENT_CERT'), keyFile: required('CLIENT_KEY'), ...(caFile && { caFile }) };
const apiUrl = required('API_URL');

try {
  const token = await getToken({
    issuer: required('ISSUER'),
    clientId: required('CLIENT_ID'),
    ...tls,
    ...(setting('RESOURCE') && { resource: setting('RESOURCE') }),
    ...(setting('SCOPE') && { scope: setting('SCOPE') }),
  });
  console.error(`got a ${token.token_type} token for "${token.scope ?? ''}", valid ${token.expires_in} s`);
  const answer = await callApi(apiUrl, token.access_token, tls);
  console.log(answer.status, JSON.stringify(answer.body, null, 2));
  process.exitCode = answer.status < 400 ? 0 : 1;
} catch (error) {
  console.error(error instanceof TokenError ? error.message : error);
  process.exitCode = 1;
}
