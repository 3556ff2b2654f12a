/**
 * A service that gets an access token from Tessera for itself and calls an API with it: the client
 * credentials grant, authenticated by an X.509 client certificate (RFC 8705 `tls_client_auth` or
 * `self_signed_tls_client_auth`), and an access token bound to that certificate. It depends on
 * nothing of Tessera's but its discovery document, so it can be copied into a service as it is.
 *
 * The certificate travels in the TLS handshake, never in a header or the body: only the holder of
 * its private key can complete the handshake, and the token Tessera issues carries the certificate's
 * thumbprint (`cnf["x5t#S256"]`), so the API accepts it only on a connection with the same
 * certificate. The same certificate and key must therefore be used to call the API.
 *
 * node:https is used rather than the built-in fetch: fetch can present a client certificate and
 * trust a private CA only through undici's Agent, which is not a dependency here.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

/** The client's TLS identity, and the CA to trust for Tessera's and the API's certificates. */
export interface ClientTls {
  /** PEM certificate the client authenticates with (several PEM blocks: leaf first, then intermediates). */
  certFile: string;
  /** PEM private key of that certificate. */
  keyFile: string;
  /** PEM CA bundle for the servers' certificates, when they are not from a public CA. */
  caFile?: string;
}

export interface TokenRequest extends ClientTls {
  /** Tessera's issuer identifier, exactly as in its discovery document. */
  issuer: string;
  clientId: string;
  /** The API's resource indicator (RFC 8707); may be left out when the client has exactly one. */
  resource?: string;
  /** Space-separated scopes, each one the client was allowed. Left out, the token carries no scope at all. */
  scope?: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope?: string;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the answer was JSON, the text otherwise. */
  body: unknown;
}

export type TokenErrorCode = 'ERR_DISCOVERY' | 'ERR_TOKEN_REQUEST';

/** A refused token request: `error` is the OAuth error Tessera answered (e.g. `invalid_client`). */
export class TokenError extends Error {
  readonly code: TokenErrorCode;
  readonly status: number | undefined;
  readonly error: string | undefined;

  constructor(code: TokenErrorCode, message: string, details: { status?: number; error?: string } = {}) {
    super(message);
    this.name = 'TokenError';
    this.code = code;
    this.status = details.status;
    this.error = details.error;
  }
}

interface RequestOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** The client certificate to present; none when left out. */
  tls?: ClientTls | undefined;
  caFile?: string | undefined;
}

/** One HTTPS (or HTTP) request; the connection presents the client certificate when `tls` is given. */
export function request(url: string, options: RequestOptions = {}): Promise<HttpAnswer> {
  const caFile = options.tls?.caFile ?? options.caFile;
  const secure = url.startsWith('https:');
  const transport = secure ? https : http;
  const tlsOptions: https.RequestOptions = secure
    ? {
      ...(caFile && { ca: readFileSync(caFile) }),
      ...(options.tls && { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }),
      minVersion: 'TLSv1.2',
    }
    : {};
  return new Promise((resolve, reject) => {
    const outgoing = transport.request(url, {
      method: options.method ?? 'GET',
      headers: { accept: 'application/json', ...options.headers },
      timeout: 10_000,
      ...tlsOptions,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        if (/^application\/(.+\+)?json/.test(response.headers['content-type'] ?? '')) {
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON after all: keep the text.
          }
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
      });
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${url} did not answer within 10 seconds`)));
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/**
 * Where a certificate-using client sends its token request. RFC 8705 section 5: when the server
 * publishes `mtls_endpoint_aliases`, certificate-authenticated requests go there (Tessera's mTLS
 * listener, which asks for a client certificate; the main listener never does, so that browsers are
 * never prompted). Without aliases (e.g. a proxy in front asks for certificates on the one
 * endpoint) the plain `token_endpoint` is the place.
 */
export async function mtlsTokenEndpoint(issuer: string, caFile?: string): Promise<string> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const answer = await request(url, { caFile });
  if (answer.status !== 200) throw new TokenError('ERR_DISCOVERY', `${url} answered ${answer.status}`, { status: answer.status });
  const discovery = answer.body as { issuer?: string; token_endpoint?: string; mtls_endpoint_aliases?: { token_endpoint?: string } };
  if (discovery.issuer !== issuer) throw new TokenError('ERR_DISCOVERY', `${url} names the issuer ${discovery.issuer}, not ${issuer}`);
  const endpoint = discovery.mtls_endpoint_aliases?.token_endpoint ?? discovery.token_endpoint;
  if (!endpoint) throw new TokenError('ERR_DISCOVERY', `${url} has no token endpoint`);
  return endpoint;
}

/**
 * The client credentials grant over mutual TLS. `client_id` goes in the body because nothing else
 * names the client (RFC 8705 section 2); the certificate authenticates it. Tokens are short-lived
 * (the resource's TTL): get a new one when `expires_in` runs out rather than caching them longer.
 */
export async function getToken(input: TokenRequest): Promise<TokenResponse> {
  const endpoint = await mtlsTokenEndpoint(input.issuer, input.caFile);
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: input.clientId });
  if (input.resource) form.set('resource', input.resource);
  if (input.scope) form.set('scope', input.scope);
  const answer = await request(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    tls: input,
  });
  const body = answer.body as Partial<TokenResponse> & { error?: string; error_description?: string };
  if (answer.status !== 200 || typeof body.access_token !== 'string') {
    const reason = body.error ? `${body.error}${body.error_description ? `: ${body.error_description}` : ''}` : `status ${answer.status}`;
    throw new TokenError('ERR_TOKEN_REQUEST', `the token request was refused (${reason})`, {
      status: answer.status,
      ...(body.error && { error: body.error }),
    });
  }
  return body as TokenResponse;
}

/**
 * Calls the API with the token on a connection that presents the same certificate: that is what
 * makes a certificate-bound token usable. Leave `tls` out to call without a certificate.
 */
export function callApi(url: string, accessToken: string, tls: ClientTls | { caFile?: string } | undefined, options: { method?: 'GET' | 'POST'; body?: unknown } = {}): Promise<HttpAnswer> {
  const withCertificate = tls && 'certFile' in tls ? tls : undefined;
  return request(url, {
    method: options.method ?? 'GET',
    headers: {
      authorization: `Bearer ${accessToken}`,
      ...(options.body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    tls: withCertificate,
    caFile: tls?.caFile,
  });
}
