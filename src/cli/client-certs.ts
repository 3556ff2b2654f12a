/**
 * `tessera clients certs add|remove`: rotating an mTLS client's credentials without downtime. A
 * client holds several certificates (self_signed_tls_client_auth) or subjects (tls_client_auth) at
 * once: add the new one, deploy it, then remove the old one. The last one cannot be removed.
 */
import type { TlsSubject } from '../domain/certificates.ts';
import type { ClientService } from '../domain/clients.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { readCertificateFile, SINGLE_TLS_SUBJECT_SPECS, subjectOption, TLS_SUBJECT_OPTIONS, tlsSubjectsFrom } from './credentials.ts';
import { printJson, printLines } from './output.ts';

const CLIENT_ARGUMENT = [{ name: 'CLIENT_ID', description: 'An mTLS client created with "tessera clients create --grant client_credentials"' }] as const;

/** Exactly one credential per call, so a refused change never leaves half of it behind. */
function exactlyOne(command: string, values: Record<string, unknown>, options: readonly string[]): void {
  const present = options.filter((option) => values[option] !== undefined);
  if (present.length !== 1) {
    throw new UsageError(present.length
      ? `"${command}" changes one credential at a time; got ${present.map((option) => `--${option}`).join(' and ')}`
      : `"${command}" needs one of ${options.map((option) => `--${option}`).join(', ')}`);
  }
}

/** The credentials a client holds now, as `clients list --json` shows them. */
async function registered(clients: ClientService, clientId: string): Promise<{ thumbprints: unknown[] } | { tls_subjects: unknown[] }> {
  const metadata = await clients.findMetadata(clientId) ?? {};
  if (metadata.token_endpoint_auth_method === 'tls_client_auth') return { tls_subjects: (metadata.tessera_tls_subjects as unknown[] | undefined) ?? [] };
  return { thumbprints: ((metadata.jwks as { keys?: Array<{ kid?: unknown }> } | undefined)?.keys ?? []).map((key) => key.kid) };
}

function describeSubject(subject: TlsSubject): string {
  return `${subjectOption(subject)} ${JSON.stringify(subject.value)}`;
}

const add = defineCommand({
  summary: 'Register another certificate or TLS subject for an mTLS client (for rotation)',
  description: [
    'Register one more credential for an mTLS client, next to the ones it has:',
    '  --cert PATH.pem                     a certificate, for a self_signed_tls_client_auth client',
    '  --tls-subject-dn DN, --tls-san-*    a subject, for a tls_client_auth client',
  ].join('\n'),
  forms: [
    'clients certs add CLIENT_ID --cert PATH.pem [--json]',
    'clients certs add CLIENT_ID --tls-subject-dn DN | --tls-san-dns NAME | --tls-san-uri URI | --tls-san-ip IP | --tls-san-email EMAIL [--json]',
  ],
  args: CLIENT_ARGUMENT,
  options: {
    cert: { type: 'string', placeholder: 'PATH.pem', description: 'self_signed_tls_client_auth: a certificate the client will present' },
    ...SINGLE_TLS_SUBJECT_SPECS,
    json: JSON_OPTION,
  },
  check(values) {
    exactlyOne('clients certs add', values, ['cert', ...Object.keys(TLS_SUBJECT_OPTIONS)]);
  },
  async run({ values, args: [clientId = ''], services }) {
    // Read before the store opens: a bad file is reported with its path and changes nothing.
    const certificate = values.cert === undefined ? undefined : readCertificateFile(values.cert);
    const { clients } = await services();
    if (certificate) {
      await clients.addCertificate(clientId, certificate.pem);
      const result = { client_id: clientId, thumbprint: certificate.thumbprint, ...await registered(clients, clientId) };
      if (values.json) return printJson(result);
      return printLines(
        `Registered the certificate ${certificate.thumbprint} (x5t#S256) for client ${clientId}.`,
        `Once the client uses it, remove the old one: tessera clients certs remove ${clientId} --thumbprint OLD_THUMBPRINT`,
      );
    }
    const [subject] = tlsSubjectsFrom(values);
    await clients.addTlsSubject(clientId, subject!);
    if (values.json) return printJson({ client_id: clientId, tls_subject: subject, ...await registered(clients, clientId) });
    printLines(`Registered ${describeSubject(subject!)} for client ${clientId}.`);
  },
});

const remove = defineCommand({
  summary: 'Remove a certificate or TLS subject from an mTLS client (not its last one)',
  forms: [
    'clients certs remove CLIENT_ID --thumbprint X5T_S256 [--json]',
    'clients certs remove CLIENT_ID --tls-subject-dn DN | --tls-san-dns NAME | --tls-san-uri URI | --tls-san-ip IP | --tls-san-email EMAIL [--json]',
  ],
  args: CLIENT_ARGUMENT,
  options: {
    thumbprint: { type: 'string', placeholder: 'X5T_S256', description: 'self_signed_tls_client_auth: the certificate\'s x5t#S256 thumbprint (see "clients list --json")' },
    ...SINGLE_TLS_SUBJECT_SPECS,
    json: JSON_OPTION,
  },
  check(values) {
    exactlyOne('clients certs remove', values, ['thumbprint', ...Object.keys(TLS_SUBJECT_OPTIONS)]);
  },
  async run({ values, args: [clientId = ''], services }) {
    const { clients } = await services();
    if (values.thumbprint !== undefined) {
      await clients.removeCertificate(clientId, values.thumbprint);
      if (values.json) return printJson({ client_id: clientId, removed: values.thumbprint, ...await registered(clients, clientId) });
      return printLines(`Removed the certificate ${values.thumbprint} from client ${clientId}.`);
    }
    const [subject] = tlsSubjectsFrom(values);
    await clients.removeTlsSubject(clientId, subject!);
    if (values.json) return printJson({ client_id: clientId, removed: subject, ...await registered(clients, clientId) });
    printLines(`Removed ${describeSubject(subject!)} from client ${clientId}.`);
  },
});

export const certsGroup = defineGroup('Rotate the certificates and TLS subjects of mTLS clients', { add, remove });
