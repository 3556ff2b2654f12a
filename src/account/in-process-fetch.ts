/**
 * A `fetch` that hands each request to a Node request handler in this same process, over an
 * in-memory socket pair, as real HTTP/1.1. The account page uses it to speak to Tessera's own
 * discovery, JWKS and token endpoints: the code exchange goes through oidc-provider's real token
 * endpoint and openid-client checks the answer exactly as for any app, but nothing depends on the
 * public issuer URL being reachable from the server itself (behind a proxy it often is not).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { duplexPair } from 'node:stream';

/** The largest answer read back: discovery, a JWKS and a token response are a few kilobytes. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export type InProcessFetch = (url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown; signal?: AbortSignal }) => Promise<Response>;

export function inProcessFetch(handler: () => http.RequestListener): InProcessFetch {
  return async function fetchInProcess(url, init) {
    const target = new URL(url);
    const body = await bodyBytes(init.body);
    const server = http.createServer(handler());
    const [clientSide, serverSide] = duplexPair();
    server.emit('connection', serverSide);
    return new Promise<Response>((resolve, reject) => {
      const request = http.request({
        host: target.hostname,
        path: target.pathname + target.search,
        method: init.method ?? 'GET',
        setHost: false,
        headers: { ...init.headers, host: target.host, ...(body && { 'content-length': String(body.length) }) },
        createConnection: () => clientSide as unknown as Socket,
        signal: init.signal,
      }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            response.destroy(new Error('in-process response too large'));
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', reject);
        response.on('end', () => {
          clientSide.destroy();
          const headers = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) headers.append(name, item);
          }
          const status = response.statusCode ?? 500;
          resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers }));
        });
      });
      request.on('error', (error) => {
        clientSide.destroy();
        reject(error);
      });
      request.end(body);
    });
  };
}

async function bodyBytes(body: unknown): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return Buffer.from(await new Response(body as BodyInit).arrayBuffer());
}
