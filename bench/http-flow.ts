/**
 * A small load generator for multi-request flows (sign-in, refresh), where a single-request tool
 * like autocannon does not fit: N virtual users, each with its own keep-alive connection and
 * cookie jar, run a flow in a loop for a fixed time; the result has flows per second and latency
 * percentiles like autocannon's.
 */
import http from 'node:http';
import https from 'node:https';

export interface Response {
  status: number;
  location: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One virtual user: a keep-alive connection per origin, and cookies. With `plain`, every request goes
 * over plain http, https URLs included: the server is then what a TLS-terminating proxy would reach,
 * and names its https ISSUER in the redirects it sends.
 */
export class VirtualUser {
  readonly #agent: http.Agent;
  readonly #plain: boolean;
  readonly #cookies = new Map<string, string>();

  constructor(ca: string, tls: { cert?: string; key?: string } = {}, plain = false) {
    this.#plain = plain;
    this.#agent = plain ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : new https.Agent({ keepAlive: true, maxSockets: 1, ca, ...tls });
  }

  clearCookies(): void {
    this.#cookies.clear();
  }

  request(url: string, options: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
    const cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (this.#plain) url = url.replace(/^https:/, 'http:');
    return new Promise((resolve, reject) => {
      const request = (this.#plain ? http : https).request(url, {
        method: options.method ?? (body ? 'POST' : 'GET'),
        agent: this.#agent,
        headers: {
          ...(cookie && { cookie }),
          ...(body && { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }),
          ...options.headers,
        },
      }, (response) => {
        for (const line of response.headers['set-cookie'] ?? []) {
          const [pair] = line.split(';');
          const index = pair!.indexOf('=');
          const value = pair!.slice(index + 1);
          if (value) this.#cookies.set(pair!.slice(0, index), value);
          else this.#cookies.delete(pair!.slice(0, index));
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({
          status: response.statusCode ?? 0,
          location: response.headers.location && new URL(response.headers.location, url).href,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }));
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export interface FlowResult {
  /** Completed flows per second. */
  rate: number;
  p50: number;
  p99: number;
  completed: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `flow` for each user in a loop until `seconds` have passed; a throwing flow counts as an error. */
export async function runFlows(users: VirtualUser[], seconds: number, flow: (user: VirtualUser, index: number) => Promise<void>): Promise<FlowResult> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(users.map(async (user, index) => {
    while (performance.now() < deadline) {
      const begin = performance.now();
      try {
        await flow(user, index);
        latencies.push(performance.now() - begin);
      } catch {
        errors += 1;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), completed: latencies.length, errors };
}

/** Reads the CSRF token from one of Tessera's forms. */
export function csrfToken(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error('no CSRF token on the page');
  return match[1]!;
}
