/**
 * A small local PKI for teams without one, and for tests: a CA, client certificates signed by it,
 * self-signed client certificates, and server certificates for the TLS listeners. ECDSA P-256
 * everywhere (small, fast, universally supported), via @peculiar/x509 on WebCrypto.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';

// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

import { AppError } from '../errors.ts';

const webcrypto = globalThis.crypto;
x509.cryptoProvider.set(webcrypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface KeyAndCertificate {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

export interface SubjectAltNames {
  dns?: string[];
  uri?: string[];
  ip?: string[];
  email?: string[];
}

export interface CertificateOptions {
  /** Distinguished name in RFC 4514 order, e.g. "CN=svc,O=Org". */
  subject: string;
  sans?: SubjectAltNames;
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  usage?: 'client' | 'server';
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
}

function validity(options: { notBefore?: Date; notAfter?: Date; days?: number }): { notBefore: Date; notAfter: Date } {
  // Backdated a minute so a certificate is valid at once even with small clock differences.
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + (options.days ?? 365) * DAY_MS);
  return { notBefore, notAfter };
}

function altNames(sans: SubjectAltNames = {}): x509.JsonGeneralNames {
  return [
    ...(sans.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(sans.uri ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(sans.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(sans.email ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
}

function serialNumber(): string {
  // Positive 128-bit serial (leading nibble below 8 keeps the DER integer positive).
  return `1${Buffer.from(webcrypto.getRandomValues(new Uint8Array(15))).toString('hex')}`;
}

async function leafExtensions(keys: CryptoKeyPair, options: CertificateOptions): Promise<x509.Extension[]> {
  const names = altNames(options.sans);
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([options.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
  ];
}

export async function createCertificateAuthority(options: { subject?: string; days?: number; notBefore?: Date; notAfter?: Date } = {}): Promise<KeyAndCertificate> {
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: options.subject ?? 'CN=Tessera Local CA',
    ...validity({ days: 3650, ...options }),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: certificate.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

/** A certificate signed by `ca`. */
export async function issueCertificate(ca: KeyAndCertificate, options: CertificateOptions): Promise<KeyAndCertificate> {
  const issuer = new x509.X509Certificate(ca.cert);
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: options.subject,
    issuer: issuer.subject,
    ...validity(options),
    publicKey: keys.publicKey,
    signingKey: await importPrivateKey(ca.key),
    signingAlgorithm: ALGORITHM,
    extensions: [
      ...(await leafExtensions(keys, options)),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return { cert: certificate.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

/** A self-signed client certificate (self_signed_tls_client_auth). */
export async function createSelfSignedCertificate(options: CertificateOptions): Promise<KeyAndCertificate> {
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: options.subject,
    ...validity(options),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: await leafExtensions(keys, options),
  });
  return { cert: certificate.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

/** The local CA kept under DATA_DIR/pki by `tessera pki init`. */
export class LocalPki {
  readonly directory: string;

  constructor(dataDir: string) {
    this.directory = path.join(dataDir, 'pki');
  }

  get caCertFile(): string {
    return path.join(this.directory, 'ca.pem');
  }

  get caKeyFile(): string {
    return path.join(this.directory, 'ca-key.pem');
  }

  /** Creates the CA unless it exists; returns whether it was created. */
  async init(): Promise<boolean> {
    if (existsSync(this.caCertFile)) return false;
    mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    const ca = await createCertificateAuthority();
    writeFileSync(this.caKeyFile, ca.key, { mode: 0o600, flag: 'wx' });
    writeFileSync(this.caCertFile, ca.cert, { flag: 'wx' });
    return true;
  }

  #ca(): KeyAndCertificate {
    if (!existsSync(this.caCertFile)) throw new AppError('ERR_NOT_FOUND', 'No local CA yet; run "tessera pki init" first');
    return { cert: readFileSync(this.caCertFile, 'utf8'), key: readFileSync(this.caKeyFile, 'utf8') };
  }

  /** Writes `client.pem` and `client-key.pem` into `outDir` for a certificate with CN=<clientId>. */
  async issueClientCertificate(clientId: string, outDir: string, options: Partial<CertificateOptions> = {}): Promise<{ certFile: string; keyFile: string; subject: string }> {
    const subject = options.subject ?? `CN=${clientId.replace(/[,+"\\<>;=]/g, (char) => `\\${char}`)}`;
    const issued = await issueCertificate(this.#ca(), { days: 365, ...options, subject, usage: 'client' });
    mkdirSync(outDir, { recursive: true });
    const certFile = path.join(outDir, 'client.pem');
    const keyFile = path.join(outDir, 'client-key.pem');
    writeFileSync(keyFile, issued.key, { mode: 0o600 });
    writeFileSync(certFile, issued.cert);
    return { certFile, keyFile, subject };
  }
}
