/**
 * Mutual TLS (RFC 8705): client authentication by certificate (CA-issued or self-signed) and
 * certificate-bound access tokens. Certificate-using clients are sent to the mTLS listener by
 * discovery's `mtls_endpoint_aliases`, derived from every slice's paths (features/index.ts).
 */
import type { X509Certificate } from 'node:crypto';

import { chainsTo, parseBundle, subjectMatches, type TlsSubject, type TlsSubjectType, TLS_SUBJECT_METADATA } from '../../domain/certificates.ts';
import { presentedCertificate, type PresentedCertificate } from '../client-certificates.ts';
import { metadataOf, type ClientLike } from '../client-metadata.ts';
import type { Slice } from './feature.ts';

/**
 * Checking a certificate's chain verifies signatures, the largest cost of an mTLS token request.
 * A connection presents the same certificate object for its life (client-certificates.ts), so its
 * answer is kept for a minute: long enough for a keep-alive connection's requests, short enough that
 * a CA's certificate running out of validity is noticed (the leaf's own validity is checked at
 * every request anyway).
 */
const CHAIN_ANSWER_MS = 60_000;
const chainAnswers = new WeakMap<object, { ok: boolean; until: number }>();

function chainsToClientCa(presented: PresentedCertificate, clientCas: readonly X509Certificate[]): boolean {
  const known = chainAnswers.get(presented);
  if (known && known.until > Date.now()) return known.ok;
  const ok = chainsTo(presented.certificate, clientCas, presented.chain);
  chainAnswers.set(presented, { ok, until: Date.now() + CHAIN_ANSWER_MS });
  return ok;
}

export const mtls: Slice = {
  name: 'mTLS',
  configure: ({ config, mtlsEndpointAliases }) => {
    const clientCas = config.tls.clientCa ? parseBundle(config.tls.clientCa) : [];
    return {
      // RFC 8705 section 5: certificate-using clients go to the mTLS listener; browsers never do.
      ...(mtlsEndpointAliases && { discovery: { mtls_endpoint_aliases: mtlsEndpointAliases } }),
      features: {
        mTLS: {
          enabled: true,
          certificateBoundAccessTokens: true,
          selfSignedTlsClientAuth: true,
          tlsClientAuth: true,
          getCertificate: (ctx) => presentedCertificate(ctx)?.pem,
          certificateAuthorized(ctx) {
            const presented = presentedCertificate(ctx);
            return Boolean(presented && chainsToClientCa(presented, clientCas));
          },
          // Every subject registered for the client counts, not only the one oidc-provider names:
          // that is what lets a client move to a new certificate without downtime.
          certificateSubjectMatches(ctx, property, expected) {
            const presented = presentedCertificate(ctx);
            if (!presented) return false;
            const registered = (ctx.oidc.client && metadataOf(ctx.oidc.client as unknown as ClientLike).tessera_tls_subjects) as TlsSubject[] | undefined;
            const type = Object.entries(TLS_SUBJECT_METADATA).find(([, name]) => name === property)?.[0] as TlsSubjectType | undefined;
            const subjects = registered?.length ? registered : type ? [{ type, value: expected }] : [];
            return subjects.some((subject) => subjectMatches(presented.certificate, subject));
          },
        },
      },
    };
  },
};
