/**
 * What operators hand the CLI to identify a machine client: certificate files, JWK set files and
 * TLS subjects. Read and checked here, so a mistake names the option and the file that caused it,
 * and is reported before anything is written.
 */
import { createPublicKey, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { isCurrentlyValid, parseCertificate, thumbprint, type TlsSubject, type TlsSubjectType } from '../domain/certificates.ts';
import { AppError } from '../errors.ts';
import { warn } from './output.ts';

/** The option that names each kind of TLS subject (RFC 8705 section 2.1.2), in help order. */
export const TLS_SUBJECT_OPTIONS = {
  'tls-subject-dn': 'subject_dn',
  'tls-san-dns': 'san_dns',
  'tls-san-uri': 'san_uri',
  'tls-san-ip': 'san_ip',
  'tls-san-email': 'san_email',
} as const satisfies Record<string, TlsSubjectType>;

type SubjectOption = keyof typeof TLS_SUBJECT_OPTIONS;

const SUBJECT_HELP: Record<SubjectOption, { placeholder: string; description: string }> = {
  'tls-subject-dn': { placeholder: 'DN', description: 'tls_client_auth: the certificate subject, e.g. "CN=svc,O=Org"' },
  'tls-san-dns': { placeholder: 'NAME', description: 'tls_client_auth: a DNS name in the certificate\'s subjectAltName' },
  'tls-san-uri': { placeholder: 'URI', description: 'tls_client_auth: a URI in the subjectAltName (e.g. a SPIFFE ID)' },
  'tls-san-ip': { placeholder: 'IP', description: 'tls_client_auth: an IP address in the subjectAltName' },
  'tls-san-email': { placeholder: 'EMAIL', description: 'tls_client_auth: an email address in the subjectAltName' },
};

type SubjectSpecs<Multiple extends boolean> = {
  readonly [K in SubjectOption]: { readonly type: 'string'; readonly multiple: Multiple; readonly placeholder: string; readonly description: string };
};

function subjectSpecs<Multiple extends boolean>(multiple: Multiple): SubjectSpecs<Multiple> {
  return Object.fromEntries(Object.entries(SUBJECT_HELP).map(([option, help]) => [option, { type: 'string', multiple, ...help }])) as SubjectSpecs<Multiple>;
}

/** The subject options, repeatable: a client may be known by several names at once. */
export const TLS_SUBJECT_SPECS = subjectSpecs(true);

/** The subject options, once each: `clients certs add|remove` change one subject at a time. */
export const SINGLE_TLS_SUBJECT_SPECS = subjectSpecs(false);

/** Every subject given, in option order, whether the options were repeatable or not. */
export function tlsSubjectsFrom(values: Readonly<Record<SubjectOption, string | readonly string[] | undefined>>): TlsSubject[] {
  return Object.entries(TLS_SUBJECT_OPTIONS).flatMap(([option, type]) => {
    const given = values[option as SubjectOption];
    return (given === undefined ? [] : typeof given === 'string' ? [given] : given).map((value) => ({ type, value }));
  });
}

/** `{"type": "subject_dn", ...}` back to the option an operator would type: `--tls-subject-dn`. */
export function subjectOption(subject: TlsSubject): string {
  return `--${Object.entries(TLS_SUBJECT_OPTIONS).find(([, type]) => type === subject.type)?.[0] ?? subject.type}`;
}

export function readInputFile(option: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message;
    throw new AppError('ERR_INVALID_INPUT', `cannot read --${option} ${file}: ${reason}`, { cause: error });
  }
}

export interface CertificateFile {
  readonly file: string;
  readonly pem: string;
  readonly certificate: X509Certificate;
  /** RFC 8705 `x5t#S256`. */
  readonly thumbprint: string;
}

export function readCertificateFile(file: string): CertificateFile {
  const pem = readInputFile('cert', file);
  let certificate: X509Certificate;
  try {
    certificate = parseCertificate(pem);
  } catch (error) {
    throw new AppError('ERR_CERTIFICATE_INVALID', `--cert ${file} is not a PEM-encoded X.509 certificate`, { cause: error });
  }
  // Registering a certificate ahead of time (rotation) is legitimate; an expired one is likely a mistake.
  if (!isCurrentlyValid(certificate)) warn(`the certificate in ${file} is not valid now (valid from ${certificate.validFrom} to ${certificate.validTo})`);
  return { file, pem, certificate, thumbprint: thumbprint(certificate) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JWK set of public keys only: a private key in a client's registration is a leak, not a config. */
export function readJwksFile(file: string): { keys: Record<string, unknown>[] } {
  const text = readInputFile('jwks', file);
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch (error) {
    throw new AppError('ERR_INVALID_INPUT', `--jwks ${file} is not valid JSON`, { cause: error });
  }
  const keys = isObject(jwks) ? jwks.keys : undefined;
  if (!Array.isArray(keys) || !keys.length || !keys.every(isObject)) {
    throw new AppError('ERR_CLIENT_INVALID', `--jwks ${file} must be a JWK set: {"keys": [{...}, ...]}`);
  }
  keys.forEach((key, index) => {
    const which = `key ${index + 1}${typeof key.kid === 'string' ? ` (kid ${JSON.stringify(key.kid)})` : ''} in --jwks ${file}`;
    if ('d' in key || 'k' in key) throw new AppError('ERR_CLIENT_INVALID', `${which} is a private or secret key; register public keys only`);
    try {
      createPublicKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (error) {
      throw new AppError('ERR_CLIENT_INVALID', `${which} is not a usable public key`, { cause: error });
    }
  });
  return { keys };
}
