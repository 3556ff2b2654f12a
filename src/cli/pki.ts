/**
 * `tessera pki ...`: a local certificate authority under DATA_DIR/pki, for teams without a PKI and
 * for tests. Its certificate is what MTLS_CA points at; the client certificates it issues serve
 * tls_client_auth clients (by subject) and self_signed_tls_client_auth clients (by thumbprint) alike.
 * The PKI code (and its X.509 library) loads only when a pki command runs.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { thumbprint } from '../domain/certificates.ts';
import type { SubjectAltNames } from '../domain/pki.ts';
import { AppError } from '../errors.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines } from './output.ts';

const MAX_DAYS = 3650;

function checkDays(days: string | undefined): void {
  if (days !== undefined && (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > MAX_DAYS)) {
    throw new UsageError(`--days must be a whole number from 1 to ${MAX_DAYS}, not ${JSON.stringify(days)}`);
  }
}

async function localPki(dataDir: string) {
  const { LocalPki } = await import('../domain/pki.ts');
  return new LocalPki(dataDir);
}

const init = defineCommand({
  summary: 'Create a local CA under DATA_DIR/pki (does nothing if one exists)',
  description: [
    'Create a local certificate authority under DATA_DIR/pki (ECDSA P-256, valid 10 years) and print',
    'its certificate\'s path. Set MTLS_CA to that path so Tessera accepts the client certificates it',
    'issues for tls_client_auth. Running it again keeps the existing CA.',
  ].join('\n'),
  options: { json: JSON_OPTION },
  async run({ values, config }) {
    const pki = await localPki(config.dataDir);
    const created = await pki.init();
    if (values.json) return printJson({ ca_cert: pki.caCertFile, created });
    printLines(
      created ? `Created a local CA: ${pki.caCertFile}` : `A local CA already exists, left unchanged: ${pki.caCertFile}`,
      `Set MTLS_CA=${pki.caCertFile} so Tessera trusts the client certificates it issues.`,
    );
  },
});

const SAN_OPTIONS = {
  'san-dns': { type: 'string', multiple: true, placeholder: 'NAME', description: 'A DNS name for the subjectAltName' },
  'san-uri': { type: 'string', multiple: true, placeholder: 'URI', description: 'A URI for the subjectAltName (e.g. a SPIFFE ID)' },
  'san-ip': { type: 'string', multiple: true, placeholder: 'IP', description: 'An IP address for the subjectAltName' },
  'san-email': { type: 'string', multiple: true, placeholder: 'EMAIL', description: 'An email address for the subjectAltName' },
} as const;

function sansFrom(values: Record<keyof typeof SAN_OPTIONS, string[]>): SubjectAltNames {
  return { dns: values['san-dns'], uri: values['san-uri'], ip: values['san-ip'], email: values['san-email'] };
}

function describeCertificate(certFile: string) {
  const certificate = new X509Certificate(readFileSync(certFile));
  return { 'x5t#S256': thumbprint(certificate), not_after: new Date(certificate.validTo).toISOString() };
}

const issue = defineCommand({
  summary: 'Write a client certificate and key signed by the local CA',
  description: [
    'Write DIR/client.pem and DIR/client-key.pem (the key readable by its owner only): a client',
    'certificate signed by the local CA, with the subject CN=CLIENT_ID unless --subject says otherwise.',
    'Register it with the client by its subject (--auth tls_client_auth --tls-subject-dn SUBJECT) or by',
    'the certificate itself (--auth self_signed_tls_client_auth --cert DIR/client.pem).',
  ].join('\n'),
  options: {
    'client-id': { type: 'string', required: true, placeholder: 'ID', description: 'The client the certificate is for (its CN unless --subject is given)' },
    out: { type: 'string', required: true, placeholder: 'DIR', description: 'Directory to write client.pem and client-key.pem into (created if missing)' },
    subject: { type: 'string', placeholder: 'DN', description: 'Subject distinguished name, e.g. "CN=svc,O=Org"' },
    ...SAN_OPTIONS,
    days: { type: 'string', placeholder: 'N', description: 'Days the certificate is valid (default 365)' },
    json: JSON_OPTION,
  },
  check(values) {
    checkDays(values.days);
    if (values.subject !== undefined && !/^[A-Za-z][\w.-]*=/.test(values.subject)) throw new UsageError(`--subject must be a distinguished name like "CN=svc,O=Org"`);
  },
  async run({ values, config }) {
    const pki = await localPki(config.dataDir);
    const issued = await pki.issueClientCertificate(values['client-id'], values.out, {
      ...(values.subject !== undefined && { subject: values.subject }),
      ...(values.days !== undefined && { days: Number(values.days) }),
      sans: sansFrom(values),
    });
    const output = { cert_file: issued.certFile, key_file: issued.keyFile, subject: issued.subject, ...describeCertificate(issued.certFile), ca_cert: pki.caCertFile };
    if (values.json) return printJson(output);
    printLines(
      `Wrote ${output.cert_file} and ${output.key_file}.`,
      `subject:  ${output.subject}`,
      `x5t#S256: ${output['x5t#S256']}`,
      `expires:  ${output.not_after}`,
      `Issued by the local CA ${output.ca_cert}; Tessera trusts it for tls_client_auth when MTLS_CA points at it.`,
    );
  },
});

const serverCert = defineCommand({
  summary: 'Write a TLS server certificate and key signed by the local CA (for TLS_CERT/TLS_KEY in development)',
  description: [
    'Write DIR/server.pem and DIR/server-key.pem: a server certificate signed by the local CA, for',
    'TLS_CERT and TLS_KEY in development. Names default to localhost, 127.0.0.1 and ::1. Clients',
    'trust it when they trust the local CA (DATA_DIR/pki/ca.pem).',
  ].join('\n'),
  options: {
    out: { type: 'string', required: true, placeholder: 'DIR', description: 'Directory to write server.pem and server-key.pem into (created if missing)' },
    'san-dns': SAN_OPTIONS['san-dns'],
    'san-ip': SAN_OPTIONS['san-ip'],
    days: { type: 'string', placeholder: 'N', description: 'Days the certificate is valid (default 365)' },
    json: JSON_OPTION,
  },
  check(values) {
    checkDays(values.days);
  },
  async run({ values, config }) {
    const pki = await localPki(config.dataDir);
    if (!existsSync(pki.caCertFile)) throw new AppError('ERR_NOT_FOUND', 'no local CA yet; run "tessera pki init" first');
    const { issueCertificate } = await import('../domain/pki.ts');
    const defaults = !values['san-dns'].length && !values['san-ip'].length;
    const sans = defaults ? { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } : { dns: values['san-dns'], ip: values['san-ip'] };
    const subject = `CN=${sans.dns[0] ?? sans.ip[0]}`;
    const issued = await issueCertificate(
      { cert: readFileSync(pki.caCertFile, 'utf8'), key: readFileSync(pki.caKeyFile, 'utf8') },
      { subject, sans, usage: 'server', ...(values.days !== undefined && { days: Number(values.days) }) },
    );
    mkdirSync(values.out, { recursive: true });
    const certFile = path.join(values.out, 'server.pem');
    const keyFile = path.join(values.out, 'server-key.pem');
    writeFileSync(keyFile, issued.key, { mode: 0o600 });
    writeFileSync(certFile, issued.cert);
    const output = { cert_file: certFile, key_file: keyFile, subject, san_dns: sans.dns, san_ip: sans.ip, ...describeCertificate(certFile), ca_cert: pki.caCertFile };
    if (values.json) return printJson(output);
    printLines(
      `Wrote ${certFile} and ${keyFile} for ${[...sans.dns, ...sans.ip].join(', ')}.`,
      `Set TLS_CERT=${certFile} and TLS_KEY=${keyFile}; clients must trust ${pki.caCertFile}.`,
    );
  },
});

export const pkiGroup = defineGroup('A local certificate authority for mTLS clients and development TLS', {
  init,
  issue,
  'server-cert': serverCert,
});
