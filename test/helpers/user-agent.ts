/**
 * A minimal browser stand-in for HTTP-level flow tests: a cookie jar, manual redirects, and form
 * reading. It speaks only Tessera's public surface (HTML forms and redirects), like a person's
 * browser with JavaScript off. The real-browser test (browser.test.ts) covers the same pages in Chromium.
 */
import { request, type TlsRequest } from './tls-client.ts';

export interface Page {
  status: number;
  url: string;
  headers: Headers;
  body: string;
}

export class UserAgent {
  readonly #cookies = new Map<string, string>();
  /** Every Set-Cookie line received, in order (tests about cookie names and attributes read it). */
  readonly setCookieLines: string[] = [];
  /** CA to trust for https:// (Tessera on a test certificate); plain fetch otherwise. */
  readonly #ca: string | undefined;

  constructor(options: { ca?: string } = {}) {
    this.#ca = options.ca;
  }

  /** The Cookie header this agent would send, for requests made around it (raw bodies, property tests). */
  cookieHeader(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  /** A cookie's value in the jar. */
  cookie(name: string): string | undefined {
    return this.#cookies.get(name);
  }

  /** Puts a cookie in the jar as if some other site had set it (planted-cookie tests). */
  plantCookie(name: string, value: string): void {
    this.#cookies.set(name, value);
  }

  /** Requests a URL without following redirects. */
  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Page> {
    const headers = new Headers(init.headers);
    const cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (cookie) headers.set('cookie', cookie);
    let body: string | undefined;
    if (init.form) {
      headers.set('content-type', 'application/x-www-form-urlencoded');
      body = new URLSearchParams(init.form).toString();
    }
    const method = init.method ?? (init.form ? 'POST' : 'GET');
    const response = this.#ca
      ? await viaTls(url, { method, headers: Object.fromEntries(headers), ...(init.form && { form: init.form }), ca: this.#ca })
      : await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      this.setCookieLines.push(line);
      const [pair] = line.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return { status: response.status, url, headers: response.headers, body: await response.text() };
  }

  /**
   * Follows redirects from `url` until the response is not a redirect, or until the next hop would
   * leave `stopAtOrigin`'s opposite: redirects to `stopAt` (the relying party's callback) are
   * returned unfollowed, so the test can read the code.
   */
  async follow(url: string, stopAt: string, init?: Parameters<UserAgent['request']>[1]): Promise<Page> {
    let page = await this.request(url, init);
    for (let hops = 0; hops < 10; hops += 1) {
      const location = page.headers.get('location');
      if (page.status < 300 || page.status >= 400 || !location) return page;
      const next = new URL(location, page.url).href;
      if (next.startsWith(stopAt)) return { ...page, url: next };
      page = await this.request(next);
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

async function viaTls(url: string, options: TlsRequest): Promise<Response> {
  const response = await request(url, options);
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) {
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) headers.append(name, item);
  }
  return new Response(response.status === 204 || response.status === 304 ? null : response.text, { status: response.status, headers });
}

/** The hidden and visible input values of the first form whose action contains `actionPart`. */
export function readForm(html: string, actionPart: string): { action: string; fields: Record<string, string> } {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
  const form = forms.find(([, attributes]) => attributes!.includes(actionPart));
  if (!form) throw new Error(`no form with action containing ${actionPart} in:\n${html.slice(0, 2000)}`);
  const action = /action="([^"]*)"/.exec(form[1]!)?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const [input] of form[2]!.matchAll(/<input\b[^>]*>/g)) {
    const name = /name="([^"]*)"/.exec(input)?.[1];
    const value = /value="([^"]*)"/.exec(input)?.[1] ?? '';
    if (name) fields[name] = decodeEntities(value);
  }
  return { action: decodeEntities(action), fields };
}

function decodeEntities(value: string): string {
  return value
    .replaceAll('&#34;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&');
}
