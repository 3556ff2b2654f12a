/** Certificate handling is pure logic: thumbprints, names, chains and proxy headers. */
import { X509Certificate } from 'node:crypto';

import test from 'ava';

import { chainsTo, subjectDnMatches, subjectMatches, thumbprint } from '../src/domain/certificates.ts';
import { dnProblem, parseDn } from '../src/domain/distinguished-name.ts';
import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate } from '../src/domain/pki.ts';
import { parseCertificateHeader } from '../src/oidc/client-certificates.ts';

const DAY = 86_400_000;

test('a distinguished name matches in either RDN order and with any spacing or type spelling', async (t) => {
  const ca = await createCertificateAuthority();
  const certificate = new X509Certificate((await issueCertificate(ca, { subject: 'CN=svc,O=Org' })).cert);
  for (const spelling of ['CN=svc,O=Org', 'O=Org,CN=svc', 'cn=svc, o=Org', '2.5.4.3=svc,2.5.4.10=Org', 'CN=#0c03737663,O=Org', 'CN=\\73vc,O=Org', 'CN="svc",O=Org']) {
    t.true(subjectDnMatches(certificate, spelling), spelling);
  }
  t.false(subjectDnMatches(certificate, 'CN=svc,O=org'), 'values keep their case');
  t.false(subjectDnMatches(certificate, 'CN=svc+O=Org'), 'one multi-valued RDN is not two RDNs');
  t.false(subjectDnMatches(certificate, 'CN=svc,O=Org,O=Org'), 'a repeated RDN is another name');
});

test('an escaped or quoted comma stays inside its value and never splits the name', async (t) => {
  const ca = await createCertificateAuthority();
  const confusing = new X509Certificate((await issueCertificate(ca, { subject: 'CN=svc\\,O=Org' })).cert);
  t.false(subjectDnMatches(confusing, 'CN=svc,O=Org'));
  t.true(subjectDnMatches(confusing, 'CN=svc\\,O=Org'));
  t.true(subjectDnMatches(confusing, 'CN="svc,O=Org"'));
  t.true(subjectDnMatches(confusing, 'CN=svc\\2CO=Org'), 'a hex-pair escape is the same character');
  const twoRdns = new X509Certificate((await issueCertificate(ca, { subject: 'CN=svc,O=Org' })).cert);
  t.false(subjectDnMatches(twoRdns, 'CN=svc\\,O=Org'));
});

test('RFC 4514 parsing keeps types, values, multi-valued RDNs and escapes apart', (t) => {
  t.deepEqual(parseDn('CN=a+OU=b, O=Org'), [[{ type: '2.5.4.3', value: 's:a' }, { type: '2.5.4.11', value: 's:b' }], [{ type: '2.5.4.10', value: 's:Org' }]]);
  t.deepEqual(parseDn('CN=caf\\C3\\A9\\ '), [[{ type: '2.5.4.3', value: 's:caf\u00e9 ' }]], 'UTF-8 hex pairs and an escaped trailing space');
  t.deepEqual(parseDn('CN=x=y'), [[{ type: '2.5.4.3', value: 's:x=y' }]]);
  t.deepEqual(parseDn('1.2.3.4=#040102'), [[{ type: '1.2.3.4', value: '#040102' }]], 'a non-string value compares by its DER');
});

test('unparsable distinguished names are refused with a reason', (t) => {
  for (const [dn, reason] of [
    ['', /empty/], ['garbage', /unknown attribute type/], ['CN', /expected =/], ['CN=', /empty value/], ['FOO=bar', /unknown attribute type FOO/], ['CN=svc;O=Org', /unescaped ;/],
    ['CN=a\\q', /backslash/], ['CN="open', /unterminated/], ['CN=#zz', /hex/], ['CN=\\FF', /UTF-8/], ['CN=a,,O=b', /attribute type/],
  ] as const) {
    t.regex(dnProblem(dn) ?? 'accepted', reason, dn);
  }
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
