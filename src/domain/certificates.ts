/**
 * X.509 client certificates for RFC 8705: thumbprints, subject matching and chain checks, on
 * node:crypto's X509Certificate. Pure functions: the TLS listener and the proxy header both end here.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

import { AppError } from '../errors.ts';
import { certificateSubject, dnMatches, dnProblem, parseDn, type ParsedDn } from './distinguished-name.ts';

/** The ways a tls_client_auth client can name its certificate (RFC 8705 section 2.1.2). */
export type TlsSubjectType = 'subject_dn' | 'san_dns' | 'san_uri' | 'san_ip' | 'san_email';

export interface TlsSubject {
  type: TlsSubjectType;
  value: string;
}

export const TLS_SUBJECT_METADATA: Record<TlsSubjectType, string> = {
  subject_dn: 'tls_client_auth_subject_dn',
  san_dns: 'tls_client_auth_san_dns',
  san_uri: 'tls_client_auth_san_uri',
  san_ip: 'tls_client_auth_san_ip',
  san_email: 'tls_client_auth_san_email',
};

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function parseCertificate(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new AppError('ERR_CERTIFICATE_INVALID', 'Not a PEM-encoded X.509 certificate', { cause: error });
  }
}

/** Every certificate in a PEM bundle, in order. */
export function parseBundle(pem: string): X509Certificate[] {
  return (pem.match(PEM_BLOCK) ?? []).map(parseCertificate);
}

/** RFC 8705 `x5t#S256`: base64url SHA-256 of the DER certificate. */
export function thumbprint(certificate: X509Certificate): string {
  return createHash('sha256').update(certificate.raw).digest('base64url');
}

export function toPem(der: Buffer): string {
  const body = der.toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

/** A public JWK carrying the certificate (x5c), as self_signed_tls_client_auth clients register them. */
export function certificateJwk(certificate: X509Certificate): Record<string, unknown> {
  const jwk = certificate.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  return { ...jwk, kid: thumbprint(certificate), x5c: [certificate.raw.toString('base64')] };
}

export function isCurrentlyValid(certificate: X509Certificate, now = new Date()): boolean {
  return new Date(certificate.validFrom) <= now && now <= new Date(certificate.validTo);
}

/**
 * True when `leaf` is currently valid and chains, through valid CA certificates from `intermediates`,
 * to a valid certificate in `anchors`, with every signature checked.
 */
export function chainsTo(leaf: X509Certificate, anchors: readonly X509Certificate[], intermediates: readonly X509Certificate[] = [], now = new Date()): boolean {
  let current = leaf;
  if (!isCurrentlyValid(current, now)) return false;
  for (let depth = 0; depth < 5; depth += 1) {
    const issuedBy = (candidate: X509Certificate) =>
      candidate.ca && isCurrentlyValid(candidate, now) && current.checkIssued(candidate) && current.verify(candidate.publicKey);
    if (anchors.some(issuedBy)) return true;
    const next = intermediates.find((candidate) => candidate !== current && issuedBy(candidate));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** A certificate's subject is read from its DER once per certificate object (a connection keeps one). */
const subjects = new WeakMap<X509Certificate, ParsedDn>();

function subjectOf(certificate: X509Certificate): ParsedDn {
  let subject = subjects.get(certificate);
  if (!subject) {
    subject = certificateSubject(certificate);
    subjects.set(certificate, subject);
  }
  return subject;
}

/** True when the certificate's subject is, attribute by attribute, the registered DN (distinguished-name.ts). */
export function subjectDnMatches(certificate: X509Certificate, registered: string): boolean {
  let expected: ParsedDn;
  try {
    expected = parseDn(registered);
  } catch {
    // Registration refuses such DNs; one that slipped in earlier (or via an old clients.json) matches nothing.
    return false;
  }
  return dnMatches(subjectOf(certificate), expected);
}

/** The subjectAltName entries of a certificate, by kind. */
export function subjectAltNames(certificate: X509Certificate): { dns: string[]; uri: string[]; ip: string[]; email: string[] } {
  const names = { dns: [] as string[], uri: [] as string[], ip: [] as string[], email: [] as string[] };
  for (const entry of (certificate.subjectAltName ?? '').split(/,\s*/)) {
    const index = entry.indexOf(':');
    const kind = entry.slice(0, index);
    const value = entry.slice(index + 1).replace(/^"|"$/g, '');
    if (kind === 'DNS') names.dns.push(value.toLowerCase());
    else if (kind === 'URI') names.uri.push(value);
    else if (kind === 'IP Address') names.ip.push(normalizeIp(value));
    else if (kind === 'email') names.email.push(value.toLowerCase());
  }
  return names;
}

function normalizeIp(value: string): string {
  if (isIP(value) !== 6) return value;
  // Expand and re-compress via URL parsing, which canonicalises IPv6 text forms.
  return new URL(`http://[${value}]/`).hostname.slice(1, -1);
}

export function subjectMatches(certificate: X509Certificate, subject: TlsSubject): boolean {
  const names = subjectAltNames(certificate);
  switch (subject.type) {
    case 'subject_dn':
      return subjectDnMatches(certificate, subject.value);
    case 'san_dns':
      return names.dns.includes(subject.value.toLowerCase());
    case 'san_uri':
      return names.uri.includes(subject.value);
    case 'san_ip':
      return names.ip.includes(normalizeIp(subject.value));
    case 'san_email':
      return names.email.includes(subject.value.toLowerCase());
  }
}

/** Checks a registered subject's syntax; returns a problem or undefined. */
export function tlsSubjectProblem(subject: TlsSubject): string | undefined {
  switch (subject.type) {
    case 'subject_dn': {
      const problem = dnProblem(subject.value);
      return problem ? `${subject.value} is not a distinguished name like "CN=svc,O=Org" (RFC 4514): ${problem}` : undefined;
    }
    case 'san_dns':
      return /^[A-Za-z0-9*]([A-Za-z0-9-.]*[A-Za-z0-9])?$/.test(subject.value) ? undefined : `${subject.value} is not a DNS name`;
    case 'san_uri':
      return URL.canParse(subject.value) ? undefined : `${subject.value} is not a URI`;
    case 'san_ip':
      return isIP(subject.value) ? undefined : `${subject.value} is not an IP address`;
    case 'san_email':
      return /^[^\s@]+@[^\s@]+$/.test(subject.value) ? undefined : `${subject.value} is not an email address`;
  }
}
