/**
 * Runs the example API:
 *
 *   ISSUER=https://localhost:3000 AUDIENCE=https://orders.example.com PORT=4000 \
 *   TLS_CERT=api.pem TLS_KEY=api-key.pem CA_FILE=ca.pem node examples/resource-server/run.ts
 *
 * ISSUER and AUDIENCE are required. Without TLS_CERT and TLS_KEY it speaks plain HTTP (and then
 * refuses every certificate-bound token). CA_FILE: the CA of Tessera's TLS certificate, when private.
 */
import { readFileSync } from 'node:fs';

import { startResourceServer } from './server.ts';

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

const certFile = setting('TLS_CERT');
const keyFile = setting('TLS_KEY');
if (Boolean(certFile) !== Boolean(keyFile)) {
  console.error('TLS_CERT and TLS_KEY: set both or neither');
  process.exit(2);
}
const caFile = setting('CA_FILE');

const server = await startResourceServer({
  issuer: required('ISSUER'),
  audience: required('AUDIENCE'),
  port: Number(setting('PORT') ?? 4000),
  ...(setting('HOST') && { host: setting('HOST') }),
  ...(certFile && keyFile && { tls: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') } }),
  ...(caFile && { caFile }),
});
console.log(`example API listening on ${server.url} (GET /orders needs orders:read, POST /orders needs orders:write)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close().then(() => process.exit(0), () => process.exit(1));
  });
}
