/** Certificate handling is pure logic: thumbprints, names, chains and proxy headers. */
import { X509Certificate } from 'node:crypto';

import test from 'ava';

import { chainsTo, normalizeDn, subjectMatches, thumbprint } from '../src/domain/certificates.ts';
import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate } from '../src/domain/pki.ts';
import { parseCertificateHeader } from '../src/oidc/client-certificates.ts';

const DAY = 86_400_000;

test('a distinguished name matches whatever the RDN order and spacing', (t) => {
  t.is(normalizeDn('CN=svc, O=Org'), normalizeDn('O=Org\nCN=svc'));
  t.is(normalizeDn('cn=svc,o=Org'), normalizeDn('CN=svc,O=Org'));
  t.not(normalizeDn('CN=svc,O=Org'), normalizeDn('CN=svc,O=org'), 'values keep their case');
  t.is(normalizeDn('CN=a\\,b,O=Org'), 'CN=a,b,O=Org');
});

test('each registered subject kind matches only its own name in the certificate', async (t) => {
  const ca = await createCertificateAuthority();
  const issued = await issueCertificate(ca, {
    subject: 'CN=svc,O=Org',
    sans: { dns: ['svc.example.com'], uri: ['spiffe://example.org/svc'], ip: ['10.0.0.7', '2001:db8::1'], email: ['svc@example.com'] },
  });
  const certificate = new X509Certificate(issued.cert);
  t.true(subjectMatches(certificate, { type: 'subject_dn', value: 'CN=svc,O=Org' }));
  t.false(subjectMatches(certificate, { type: 'subject_dn', value: 'CN=svc' }));
  t.true(subjectMatches(certificate, { type: 'san_dns', value: 'SVC.example.com' }));
  t.false(subjectMatches(certificate, { type: 'san_dns', value: 'other.example.com' }));
  t.true(subjectMatches(certificate, { type: 'san_uri', value: 'spiffe://example.org/svc' }));
  t.false(subjectMatches(certificate, { type: 'san_uri', value: 'spiffe://example.org/other' }));
  t.true(subjectMatches(certificate, { type: 'san_ip', value: '10.0.0.7' }));
  t.true(subjectMatches(certificate, { type: 'san_ip', value: '2001:0db8:0:0:0:0:0:1' }), 'IPv6 in another spelling');
  t.false(subjectMatches(certificate, { type: 'san_ip', value: '10.0.0.8' }));
  t.true(subjectMatches(certificate, { type: 'san_email', value: 'svc@example.com' }));
  t.false(subjectMatches(certificate, { type: 'san_dns', value: 'svc@example.com' }), 'an email is not a DNS name');
});

test('a certificate chains to its CA only while both are valid, and never to another CA', async (t) => {
  const ca = await createCertificateAuthority();
  const other = await createCertificateAuthority();
  const anchor = [new X509Certificate(ca.cert)];
  const valid = new X509Certificate((await issueCertificate(ca, { subject: 'CN=a' })).cert);
  const expired = new X509Certificate((await issueCertificate(ca, { subject: 'CN=a', notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) })).cert);
  const future = new X509Certificate((await issueCertificate(ca, { subject: 'CN=a', notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 3 * DAY) })).cert);
  const foreign = new X509Certificate((await issueCertificate(other, { subject: 'CN=a' })).cert);
  const selfSigned = new X509Certificate((await createSelfSignedCertificate({ subject: 'CN=a' })).cert);
  t.true(chainsTo(valid, anchor));
  t.false(chainsTo(expired, anchor));
  t.false(chainsTo(future, anchor));
  t.false(chainsTo(foreign, anchor));
  t.false(chainsTo(selfSigned, anchor));
  t.false(chainsTo(valid, []), 'no CA configured, nothing chains');
});

test('the thumbprint is the base64url SHA-256 of the DER certificate', async (t) => {
  const certificate = new X509Certificate((await createSelfSignedCertificate({ subject: 'CN=a' })).cert);
  const expected = Buffer.from(await crypto.subtle.digest('SHA-256', certificate.raw)).toString('base64url');
  t.is(thumbprint(certificate), expected);
  t.regex(thumbprint(certificate), /^[A-Za-z0-9_-]{43}$/);
});

test('nginx and Envoy certificate headers both yield the PEM', async (t) => {
  const { cert } = await createSelfSignedCertificate({ subject: 'CN=a' });
  t.is(parseCertificateHeader('x-ssl-client-cert', encodeURIComponent(cert))?.pem, cert);
  const xfcc = `By=spiffe://cluster/envoy;Hash=ab12;Cert="${encodeURIComponent(cert)}";Subject="CN=a,O=x;y";URI=spiffe://a,By=spiffe://second;Cert="other"`;
  t.is(parseCertificateHeader('x-forwarded-client-cert', xfcc)?.pem, cert, 'the first element, quoted values with separators inside');
  t.is(parseCertificateHeader('x-forwarded-client-cert', 'By=spiffe://x;Hash=ab'), undefined, 'no Cert field');
  t.is(parseCertificateHeader('x-ssl-client-cert', 'garbage'), undefined);
});
