/**
 * The edge of the chain, where what a request says about itself is settled once, before anything
 * reads it: which host it was sent to, over which scheme, and under which spelling of a path.
 *
 * Koa and oidc-provider build every absolute URL they print (discovery's endpoints, redirects,
 * the audiences they accept) from the request's Host and X-Forwarded-* headers. Those headers
 * come from the caller, and discovery is cached by shared caches: one request saying
 * `Host: evil.example` would otherwise hand every relying party behind the cache a document
 * pointing at evil.example. So the headers are replaced here by the origin Tessera is configured
 * with (ISSUER, or MTLS_URL for requests sent there), and a request for any other host is refused
 * with 421 Misdirected Request.
 */
import type { Context, Middleware, Next } from 'koa';

import { AppError } from '../errors.ts';
import { peerIsTrusted, trustedProxyList } from './trusted-proxies.ts';

export interface EdgeOptions {
  readonly issuer: string;
  /** Public base URL of the mTLS endpoints, when there are any: its host is Tessera's too. */
  readonly mtlsUrl?: string | undefined;
  /** Only then is X-Forwarded-Host read, and only from trusted proxies; the scheme is always ISSUER's. */
  readonly behindTlsProxy: boolean;
  readonly trustedProxies: readonly string[];
  /** Paths oidc-provider would route under another spelling (oidc/routes.ts): answered 404. */
  readonly isPathVariant: (path: string) => boolean;
}

/** Load balancers and orchestrators probe by address, not by name; these answer whatever the host. */
const HEALTH_PROBES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Other headers that say where a request was sent, dropped: X-Forwarded-Host and -Proto are
 * overwritten with Tessera's origin, and nothing else may be read in their place.
 */
const ORIGIN_HEADERS = ['x-forwarded-port', 'x-forwarded-server', 'forwarded'];

const REQUESTED_HOST = Symbol('tessera.requestedHost');

interface Origin {
  readonly scheme: string;
  /** Host name and port, as in a Host header. */
  readonly host: string;
  readonly hostname: string;
  /** The port, the scheme's default one included. */
  readonly port: string;
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };

function originOf(url: string): Origin {
  const parsed = new URL(url);
  const scheme = parsed.protocol.slice(0, -1);
  return { scheme, host: parsed.host, hostname: parsed.hostname, port: parsed.port || DEFAULT_PORTS[scheme]! };
}

/** Whether a Host header names this origin, port included (a missing port is the scheme's default). */
function names(host: string, origin: Origin): boolean {
  const port = /\]?:(\d+)$/.exec(host)?.[1] ?? DEFAULT_PORTS[origin.scheme];
  return hostnameOf(host) === origin.hostname && Number(port) === Number(origin.port);
}

/** The last Host worked out, and its name: nearly every request names the same one. */
let lastHost = '';
let lastHostname = '';

/** `id.example.com:443` -> `id.example.com`, `[::1]:3000` -> `[::1]`, lower case, no trailing dot. */
function hostnameOf(host: string): string {
  if (host === lastHost) return lastHostname;
  const lower = host.trim().toLowerCase();
  const name = lower.startsWith('[') ? lower.slice(0, lower.indexOf(']') + 1) : lower.replace(/:\d*$/, '');
  lastHost = host;
  lastHostname = name.replace(/\.$/, '');
  return lastHostname;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text?.split(',')[0]?.trim() || undefined;
}

/**
 * A request target in absolute form (`GET http://evil.example/.well-known/openid-configuration`, as
 * sent to a forward proxy) names the host the request is for, and RFC 9112 section 3.2.2 has it win
 * over Host. Koa's `href`, from which oidc-provider builds discovery's URLs, returns such a target
 * as it is, so it is turned into origin form here (the path and query, everything else reads those)
 * and its host returned, to be checked like a Host header. Undefined for an origin-form target.
 */
function absoluteFormHost(ctx: Context): string | undefined {
  const target = ctx.req.url ?? '/';
  if (target.startsWith('/')) return undefined;
  // The path as sent, not as URL would normalise it: path variants are refused, not rewritten.
  const parts = /^(https?:\/\/[^/?#]*)(.*)$/is.exec(target);
  const authority = parts && URL.canParse(parts[1]!) ? new URL(parts[1]!) : undefined;
  const rest = parts?.[2] ?? '';
  const originForm = authority ? (rest.startsWith('/') ? rest : `/${rest}`) : '/';
  ctx.req.url = originForm;
  ctx.originalUrl = originForm;
  ctx.request.originalUrl = originForm;
  // Asterisk form (`OPTIONS *`) and anything unparseable name no host of ours: '' gets 421.
  return authority ? authority.host : '';
}

/**
 * First in the chain. X-Forwarded-For and the origin headers from a peer that is not a trusted
 * proxy are dropped; the host the request asked for is noted for refuseMisdirectedRequests; then
 * Host, X-Forwarded-Host and X-Forwarded-Proto are set to Tessera's own origin, which is all Koa
 * (run with `proxy: true`, see app.ts) and oidc-provider then see. Requests sent to MTLS_URL's host
 * keep that origin (DPoP proofs and client assertions name the URL they were sent to), except
 * discovery, which always names the issuer's endpoints.
 */
export function settleRequestOrigin({ issuer, mtlsUrl, behindTlsProxy, trustedProxies }: EdgeOptions): Middleware {
  const proxies = trustedProxyList(trustedProxies);
  const main = originOf(issuer);
  const mtls = mtlsUrl ? originOf(mtlsUrl) : undefined;
  const trustedSockets = new WeakMap<object, boolean>();

  return function settleOrigin(ctx: Context, next: Next) {
    const { req } = ctx;
    const { headers } = req;
    let trusted = trustedSockets.get(req.socket);
    if (trusted === undefined) {
      trusted = peerIsTrusted(proxies, req.socket.remoteAddress);
      trustedSockets.set(req.socket, trusted);
    }
    const forwardedHost = trusted && behindTlsProxy ? firstValue(headers['x-forwarded-host']) : undefined;
    const targetHost = absoluteFormHost(ctx);
    const requested = (forwardedHost ?? targetHost ?? headers.host ?? '').toLowerCase();
    (ctx.state as Record<symbol, string>)[REQUESTED_HOST] = hostnameOf(requested);
    if (!trusted && headers['x-forwarded-for'] !== undefined) delete headers['x-forwarded-for'];
    // Deleting only what is there: a delete reshapes the headers object, on every request.
    for (const name of ORIGIN_HEADERS) if (headers[name] !== undefined) delete headers[name];
    const origin = mtls && names(requested, mtls) && !ctx.path.startsWith('/.well-known/') ? mtls : main;
    headers.host = origin.host;
    headers['x-forwarded-host'] = origin.host;
    headers['x-forwarded-proto'] = origin.scheme;
    return next();
  };
}

/**
 * After the error middleware, so refusals get its JSON or page: a request for a host that is not
 * Tessera's is refused (421), and so is a protocol path spelled otherwise than its route (404),
 * so that every check keyed on a path sees the path oidc-provider routes on.
 */
export function refuseMisdirectedRequests({ issuer, mtlsUrl, isPathVariant }: EdgeOptions): Middleware {
  const hostnames = new Set([originOf(issuer).hostname, ...(mtlsUrl ? [originOf(mtlsUrl).hostname] : [])]);
  return function refuseMisdirected(ctx: Context, next: Next) {
    if (HEALTH_PROBES.has(ctx.path)) return next();
    const requested = (ctx.state as Record<symbol, string | undefined>)[REQUESTED_HOST];
    if (requested === undefined || !hostnames.has(requested)) {
      throw new AppError('ERR_MISDIRECTED', 'This server does not answer for that host.');
    }
    if (isPathVariant(ctx.path)) throw new AppError('ERR_NOT_FOUND', 'There is nothing at this address.');
    return next();
  };
}

/**
 * A request body must come as it is (no Content-Encoding, or `identity`); anything else is refused
 * with 415 and `Accept-Encoding: identity` (RFC 9110 section 15.5.16). No browser or OAuth client
 * compresses what it sends; oidc-provider does not inflate bodies at all (it would read the
 * compressed bytes as a form), and the pages' parser answered a body that did not inflate with a
 * 500. One rule for every surface, before any parser, is also one less thing to inflate for free.
 */
export function refuseEncodedBodies(): Middleware {
  return function refuseEncodedBody(ctx: Context, next: Next) {
    const { headers } = ctx.req;
    const coding = headers['content-encoding']?.trim().toLowerCase();
    if (!coding || coding === 'identity') return next();
    if (headers['transfer-encoding'] === undefined && !(Number(headers['content-length']) > 0)) return next();
    // The table (errors.ts) adds Accept-Encoding: identity to this code's every answer.
    throw new AppError('ERR_UNSUPPORTED_ENCODING', 'Send the request body without a Content-Encoding.');
  };
}
