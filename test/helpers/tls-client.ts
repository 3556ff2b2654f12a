/**
 * HTTPS requests with a client certificate (or none), as a machine client or a TLS-terminating
 * proxy makes them: a real TLS handshake against Tessera's listeners.
 */
import https from 'node:https';
import http from 'node:http';

export interface TlsRequest {
  method?: string;
  headers?: Record<string, string>;
  /** Form fields, sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  /** Client certificate and key (PEM); omit to present none. */
  cert?: string;
  key?: string;
  /** CA that Tessera's server certificate chains to. */
  ca?: string;
  /** Source address on the loopback range, to act as a particular proxy. */
  localAddress?: string;
}

export interface TlsResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export function request(url: string, options: TlsRequest = {}): Promise<TlsResponse> {
  const target = new URL(url);
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  const headers: Record<string, string> = {
    ...(body !== undefined && { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) }),
    ...options.headers,
  };
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const outgoing = transport.request(target, {
      method: options.method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      agent: false,
      ...(target.protocol === 'https:' && { cert: options.cert, key: options.key, ca: options.ca, servername: 'localhost' }),
      ...(options.localAddress && { localAddress: options.localAddress }),
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json: () => JSON.parse(text) });
      });
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}
