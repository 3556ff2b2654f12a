/**
 * Where a request's client certificate comes from (RFC 8705): the TLS handshake on the mTLS
 * listener, or a header set by a TLS-terminating proxy that is on the trusted list. A header from
 * anywhere else is ignored, so nobody can claim a certificate by sending a header.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls';

import type { Context, Middleware, Next } from 'koa';
import { Provider } from 'oidc-provider';

import type { TlsConfig } from '../config.ts';
import { isCurrentlyValid, parseBundle, toPem } from '../domain/certificates.ts';
import { peerIsTrusted, trustedProxyList } from '../http/trusted-proxies.ts';
import type { Logger } from '../log.ts';

export interface PresentedCertificate {
  readonly pem: string;
  readonly certificate: X509Certificate;
  /** Further certificates the client sent (intermediates), leaf excluded. */
  readonly chain: readonly X509Certificate[];
  readonly source: 'tls' | 'proxy';
}

/**
 * A TLS 1.3 connection's client certificate cannot change (1.3 has no renegotiation), so it is read
 * and parsed once per connection: on the mTLS listener that was most of a token request's cost
 * (the detailed peer certificate and two parses, every request of a keep-alive connection).
 */
const byConnection = new WeakMap<object, PresentedCertificate | undefined>();

function fromTls(ctx: Context): PresentedCertificate | undefined {
  const socket = ctx.req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return undefined;
  if (byConnection.has(socket)) return byConnection.get(socket);
  const presented = readPeerCertificate(socket);
  if (socket.getProtocol?.() === 'TLSv1.3') byConnection.set(socket, presented);
  return presented;
}

function readPeerCertificate(socket: Partial<TLSSocket>): PresentedCertificate | undefined {
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | PeerCertificate;
  if (!peer?.raw) return undefined;
  const chain: X509Certificate[] = [];
  let link = (peer as DetailedPeerCertificate).issuerCertificate;
  while (link?.raw && link !== (peer as unknown) && chain.length < 5 && !chain.some((known) => known.raw.equals(link!.raw))) {
    if (link.raw.equals(peer.raw)) break;
    chain.push(new X509Certificate(link.raw));
    link = link.issuerCertificate;
  }
  return { pem: toPem(peer.raw), certificate: new X509Certificate(peer.raw), chain, source: 'tls' };
}

/**
 * nginx's `$ssl_client_escaped_cert` is a URL-encoded PEM; Envoy's X-Forwarded-Client-Cert is a list
 * of `key=value;...` elements whose `Cert` (and `Chain`) hold URL-encoded PEM. The first element is
 * the one the edge proxy added for the client it talked to.
 */
export function parseCertificateHeader(name: string, value: string): { pem: string; chain: string } | undefined {
  if (name === 'x-forwarded-client-cert') {
    const element = splitOutsideQuotes(value, ',')[0] ?? '';
    const fields = new Map(splitOutsideQuotes(element, ';').map((pair) => {
      const index = pair.indexOf('=');
      return [pair.slice(0, index).trim().toLowerCase(), pair.slice(index + 1).trim().replace(/^"|"$/g, '')] as const;
    }));
    const cert = fields.get('cert');
    return cert ? { pem: decodeURIComponent(cert), chain: decodeURIComponent(fields.get('chain') ?? '') } : undefined;
  }
  const pem = decodeURIComponent(value);
  return pem.includes('-----BEGIN CERTIFICATE-----') ? { pem, chain: '' } : undefined;
}

function splitOutsideQuotes(value: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of value) {
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * `authenticatingPaths` are the endpoints where a client authenticates (features/index.ts,
 * CLIENT_AUTHENTICATING_PATHS): an expired certificate is refused there outright.
 */
export function clientCertificates(tls: TlsConfig, logger: Logger, authenticatingPaths: ReadonlySet<string>): Middleware {
  const proxies = trustedProxyList(tls.trustedProxies);
  const header = tls.clientCertHeader;

  function fromProxy(ctx: Context): PresentedCertificate | undefined {
    if (!header) return undefined;
    const value = ctx.get(header);
    if (!value) return undefined;
    if (!peerIsTrusted(proxies, ctx.req.socket.remoteAddress)) {
      logger.warn({ remote: ctx.req.socket.remoteAddress, header, requestId: ctx.state.requestId }, 'ignored a client certificate header from an untrusted address');
      return undefined;
    }
    try {
      const parsed = parseCertificateHeader(header, value);
      if (!parsed) return undefined;
      const [leaf] = parseBundle(parsed.pem);
      if (!leaf) return undefined;
      return { pem: toPem(leaf.raw), certificate: leaf, chain: parseBundle(parsed.chain).filter((c) => !c.raw.equals(leaf.raw)), source: 'proxy' };
    } catch {
      return undefined;
    }
  }

  return function clientCertificate(ctx: Context, next: Next) {
    // Read from the TLS session (or the proxy's header) and parsed only when something asks: most
    // requests never do, and on the mTLS listener parsing costs more than the rest of a token request.
    let presented: PresentedCertificate | undefined | null = null;
    const lookUp = () => (presented === null ? (presented = fromTls(ctx) ?? fromProxy(ctx)) : presented);
    if (ctx.method === 'POST' && authenticatingPaths.has(ctx.path)) {
      const certificate = lookUp();
      if (certificate && !isCurrentlyValid(certificate.certificate)) {
        ctx.status = 401;
        ctx.body = { error: 'invalid_client', error_description: 'the client certificate is expired or not yet valid' };
        return Promise.resolve();
      }
    }
    (ctx.state as Record<symbol, unknown>)[LOOK_UP] = lookUp;
    return next();
  };
}

const LOOK_UP = Symbol('tessera.clientCertificate');

/**
 * The certificate of the request being handled, for code that has no Koa context (token models):
 * oidc-provider keeps the request's context while it handles one (`Provider.ctx`).
 */
export function currentCertificate(): PresentedCertificate | undefined {
  return presentedCertificate(Provider.ctx as { state?: Record<string, unknown> } | undefined);
}

export function presentedCertificate(ctx: { state?: Record<string, unknown> } | undefined): PresentedCertificate | undefined {
  return (ctx?.state as Record<symbol, (() => PresentedCertificate | undefined) | undefined> | undefined)?.[LOOK_UP]?.();
}
