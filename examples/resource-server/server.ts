/**
 * A small API protected by Tessera: the way a resource server validates Tessera's JWT access tokens
 * (RFC 9068) offline, with `jose` and the issuer's published keys, including certificate-bound
 * tokens (RFC 8705 section 3). It depends on nothing of Tessera's but its discovery document, so it
 * can be copied into a service as it is.
 *
 * Routes and the scope each needs:
 *   GET  /orders   orders:read
 *   POST /orders   orders:write
 *
 * A request passes when its bearer token
 *   1. is a JWT with `typ: at+jwt`, signed by a key in Tessera's JWKS with an expected algorithm;
 *   2. has this server's issuer and audience (the resource indicator it was registered with), and
 *      has not expired;
 *   3. carries the route's scope;
 *   4. when it is bound to a certificate (`cnf["x5t#S256"]`), arrives on a TLS connection where the
 *      caller presented that very certificate. Only the holder of the certificate's private key can
 *      complete such a handshake, so a stolen bound token is useless to anyone else.
 *
 * The listener asks every caller for a certificate (`requestCert`) but accepts the handshake without
 * one, or with one from any CA (`rejectUnauthorized: false`): the certificate is not what
 * authenticates the caller here, the token is; the certificate only has to be the one the token was
 * bound to, which the thumbprint comparison proves whatever CA signed it (self-signed included).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type FetchImplementation, type JWTPayload } from 'jose';

export interface ResourceServerOptions {
  /** Tessera's issuer identifier, exactly as in its discovery document, e.g. https://id.example.com */
  issuer: string;
  /** This API's resource indicator, as registered with `tessera resources create --audience`. */
  audience: string;
  /** 0 picks a free port (see `url` in the result). */
  port: number;
  host?: string;
  /**
   * PEM certificate and key to serve HTTPS with. Without them the API speaks plain HTTP, where no
   * client certificate can be presented, so every certificate-bound token is refused.
   */
  tls?: { cert: string; key: string };
  /** PEM bundle of the CA that signed Tessera's TLS certificate, when it is not a public CA. */
  caFile?: string;
  /** Algorithms Tessera signs access tokens with (RS256 today); anything else is refused. */
  algorithms?: string[];
}

export interface RunningResourceServer {
  /** https://localhost:PORT (or http://), with the port actually listened on. */
  readonly url: string;
  close(): Promise<void>;
}

/** A route: what it needs and what it answers. */
interface Route {
  scope: string;
  handle(claims: AccessTokenClaims): { status: number; body: unknown };
}

export interface AccessTokenClaims extends JWTPayload {
  client_id?: string;
  scope?: string;
  cnf?: { 'x5t#S256'?: string; jkt?: string };
}

const ROUTES: Record<string, Route> = {
  'GET /orders': {
    scope: 'orders:read',
    handle: (claims) => ({ status: 200, body: { orders: [{ id: 'o-1', item: 'tessera tiles', quantity: 12 }], caller: claims.client_id } }),
  },
  'POST /orders': {
    scope: 'orders:write',
    handle: (claims) => ({ status: 201, body: { id: 'o-2', createdBy: claims.client_id } }),
  },
};

/** Why a request was refused, rendered as an RFC 6750 `WWW-Authenticate` challenge. */
class BearerError extends Error {
  readonly status: 401 | 403;
  /** undefined: no token at all, which gets a bare challenge (RFC 6750 section 3.1). */
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | undefined;
  readonly scope: string | undefined;

  constructor(status: 401 | 403, error: BearerError['error'], description: string, scope?: string) {
    super(description);
    this.status = status;
    this.error = error;
    this.scope = scope;
  }

  challenge(): string {
    if (!this.error) return 'Bearer';
    const scope = this.scope ? `, scope="${this.scope}"` : '';
    return `Bearer error="${this.error}", error_description="${this.message.replace(/["\\]/g, '')}"${scope}`;
  }
}

/**
 * GETs a URL trusting `ca`. Node's built-in fetch cannot be given a CA without undici's Agent, and
 * Tessera in development or tests has a certificate from a local CA; node:https can.
 */
function httpGet(url: string, ca: string | undefined, init: { headers?: Headers; signal?: AbortSignal } = {}): Promise<Response> {
  const transport = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.get(url, { ca, headers: Object.fromEntries(init.headers ?? []), signal: init.signal }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          if (typeof value === 'string') headers.set(name, value);
        }
        resolve(new Response(Buffer.concat(chunks), { status: response.statusCode ?? 500, headers }));
      });
    });
    request.on('error', reject);
  });
}

/** Tessera cannot be reached (yet): the request may succeed later. */
class ServiceUnavailable extends Error {}

/** jose error codes that mean the token itself is bad. */
const TOKEN_FAULTS = new Set([
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
  // A kid that is not in the JWKS even after the refetch: a forged token, or one from another issuer.
  'ERR_JWKS_NO_MATCHING_KEY',
]);

/**
 * The verifier for Tessera's access tokens. The JWKS location comes from discovery (`jwks_uri`), not
 * from a guessed path, and discovery must name the issuer we were configured with. Discovery is
 * read on first use and retried while it fails, so the API may start before Tessera does (it
 * answers 503 until then).
 *
 * JWKS caching and key rotation, which is why a resource server never needs a restart:
 * - jose fetches the JWKS on first use and keeps it (`cacheMaxAge`, 10 minutes by default);
 * - a token signed with a `kid` it does not have makes it refetch at once, but at most once per
 *   `cooldownDuration` (30 seconds by default), so garbage tokens cannot make us hammer Tessera;
 * - Tessera serves the JWKS with `Cache-Control: public, max-age=300`, and after
 *   `tessera keys rotate` it signs with the new key while the old public key stays published until
 *   every token it signed has expired. Tokens signed before the rotation keep verifying from the
 *   cache; the first token with the new `kid` triggers the refetch that finds it.
 */
function accessTokenVerifier(options: ResourceServerOptions) {
  const ca = options.caFile ? readFileSync(options.caFile, 'utf8') : undefined;
  const discoveryUrl = `${options.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const fetchWithCa: FetchImplementation = (url, init) => httpGet(url, ca, init);
  const algorithms = options.algorithms ?? ['RS256'];

  async function discoverKeys() {
    const response = await httpGet(discoveryUrl, ca, { signal: AbortSignal.timeout(5_000) });
    if (response.status !== 200) throw new Error(`${discoveryUrl} answered ${response.status}`);
    const discovery = await response.json() as { issuer?: string; jwks_uri?: string };
    if (discovery.issuer !== options.issuer) throw new Error(`${discoveryUrl} names the issuer ${discovery.issuer}, not ${options.issuer}`);
    if (!discovery.jwks_uri) throw new Error(`${discoveryUrl} has no jwks_uri`);
    return createRemoteJWKSet(new URL(discovery.jwks_uri), {
      cooldownDuration: 30_000,
      cacheMaxAge: 600_000,
      [customFetch]: fetchWithCa,
    });
  }

  let keys: ReturnType<typeof discoverKeys> | undefined;
  function jwks() {
    keys ??= discoverKeys().catch((error: unknown) => {
      keys = undefined;
      throw new ServiceUnavailable(`cannot read Tessera's discovery document: ${(error as Error).message}`);
    });
    return keys;
  }

  return async function verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    const keySet = await jwks();
    try {
      const { payload } = await jwtVerify<AccessTokenClaims>(token, keySet, {
        issuer: options.issuer,
        audience: options.audience,
        // RFC 9068: refuses ID tokens and any other JWT signed by the same keys.
        typ: 'at+jwt',
        algorithms,
        requiredClaims: ['exp', 'iat', 'client_id'],
        clockTolerance: 5,
      });
      return payload;
    } catch (error) {
      // Only these verdicts are the token's fault. A JWKS that cannot be fetched (timeout, not 200,
      // not JSON) is ours, and must become a 500, not look like a bad token.
      if (error instanceof joseErrors.JOSEError && TOKEN_FAULTS.has(error.code)) {
        throw new BearerError(401, 'invalid_token', error.code === 'ERR_JWT_EXPIRED' ? 'the access token has expired' : 'the access token is not valid here');
      }
      throw error;
    }
  };
}

/** RFC 8705 `x5t#S256` of the certificate the caller presented on this connection: base64url SHA-256 of the DER. */
export function presentedThumbprint(request: http.IncomingMessage): string | undefined {
  const socket = request.socket as Partial<TLSSocket>;
  if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return undefined;
  const certificate = socket.getPeerCertificate();
  return certificate?.raw ? createHash('sha256').update(certificate.raw).digest('base64url') : undefined;
}

/** RFC 8705 section 3: a bound token is valid only together with its certificate. */
function checkBinding(claims: AccessTokenClaims, request: http.IncomingMessage): void {
  if (claims.cnf?.jkt) {
    // A DPoP-bound token needs a DPoP proof checked against cnf.jkt (RFC 9449); this example does
    // not implement that, and accepting such a token as a plain bearer token would undo the binding.
    throw new BearerError(401, 'invalid_token', 'DPoP-bound tokens are not accepted here');
  }
  const expected = claims.cnf?.['x5t#S256'];
  if (expected === undefined) return;
  const presented = presentedThumbprint(request);
  if (!presented) throw new BearerError(401, 'invalid_token', 'the access token is bound to a client certificate; present it');
  if (presented !== expected) throw new BearerError(401, 'invalid_token', 'the access token is bound to a different client certificate');
}

function bearerToken(request: http.IncomingMessage): string {
  const header = request.headers.authorization;
  if (!header) throw new BearerError(401, undefined, 'no access token');
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!match) throw new BearerError(401, 'invalid_request', 'the Authorization header must be "Bearer <token>"');
  return match[1]!;
}

function send(response: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  response.end(JSON.stringify(body));
}

export async function startResourceServer(options: ResourceServerOptions): Promise<RunningResourceServer> {
  const verifyAccessToken = accessTokenVerifier(options);

  async function handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const route = ROUTES[`${request.method} ${path}`];
    if (!route) return send(response, 404, { error: 'not_found' });
    try {
      const claims = await verifyAccessToken(bearerToken(request));
      checkBinding(claims, request);
      const scopes = (claims.scope ?? '').split(' ');
      if (!scopes.includes(route.scope)) throw new BearerError(403, 'insufficient_scope', `this needs the scope ${route.scope}`, route.scope);
      const result = route.handle(claims);
      send(response, result.status, result.body);
    } catch (error) {
      if (error instanceof ServiceUnavailable) {
        console.error(error.message);
        return send(response, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '5' });
      }
      if (!(error instanceof BearerError)) throw error;
      send(response, error.status, { error: error.error ?? 'unauthorized', error_description: error.message }, { 'www-authenticate': error.challenge() });
    }
  }

  const listener = (request: http.IncomingMessage, response: http.ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      console.error('resource server error:', error);
      if (!response.headersSent) send(response, 500, { error: 'server_error' });
      else response.destroy();
    });
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false }, listener)
    : http.createServer(listener);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://localhost:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
