/**
 * The console's only way to read or change anything: the admin API, called with the operator's
 * own access token, in this process (account/in-process-fetch.ts hands the request to Tessera's own
 * Koa chain as real HTTP/1.1). So the console can do nothing the API does not allow, every write is
 * audited by the API as `admin.action` naming the operator (the token's `sub`), and the API's own
 * schemas check every input.
 */
import type http from 'node:http';

import { ADMIN_API_PATH } from '../admin/resource.ts';
import { inProcessFetch, type InProcessFetch } from '../account/in-process-fetch.ts';
import { AppError, type AppErrorCode } from '../errors.ts';

/** What the admin API refused, with its `error`, words and per-field problems (wire names). */
export class AdminCallError extends Error {
  readonly status: number;
  readonly error: string;
  readonly fields: Record<string, string>;

  constructor(status: number, error: string, description: string, fields: Record<string, string> | undefined) {
    super(description);
    this.name = 'AdminCallError';
    this.status = status;
    this.error = error;
    this.fields = fields ?? {};
  }

  /** The API's 503 (store outage): the page stays, with a banner. */
  get unavailable(): boolean {
    return this.status === 503;
  }

  /** An object the page named no longer exists (a stale page, or someone else deleted it). */
  get gone(): boolean {
    return this.status === 404;
  }
}

export type Query = Record<string, string | string[] | number | undefined>;

export interface AdminCalls {
  get<T>(path: string, query?: Query): Promise<T>;
  send<T>(method: 'post' | 'put' | 'patch' | 'delete', path: string, body?: unknown): Promise<T>;
}

function queryString(query: Query | undefined): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Each path segment as the API's router expects it (a sub, a client id, an audience URL). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

export class AdminApiCaller {
  readonly #issuer: string;
  readonly #fetch: InProcessFetch;

  constructor(issuer: string, handler: () => http.RequestListener) {
    this.#issuer = issuer;
    this.#fetch = inProcessFetch(handler);
  }

  /** Calls as the operator whose token this is; the request id ties the API's log line and audit event to the page's. */
  as(accessToken: string, requestId?: string): AdminCalls {
    const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const headers: Record<string, string> = {
        authorization: `Bearer ${accessToken}`,
        accept: 'application/json',
        ...(requestId && { 'x-request-id': requestId }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      };
      const response = await this.#fetch(`${this.#issuer}${ADMIN_API_PATH}${path}`, {
        method: method.toUpperCase(),
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      const parsed = text ? JSON.parse(text) as Record<string, unknown> : undefined;
      if (response.ok) return parsed as T;
      throw new AdminCallError(
        response.status,
        typeof parsed?.error === 'string' ? parsed.error : 'error',
        typeof parsed?.error_description === 'string' ? parsed.error_description : 'The admin API refused this.',
        parsed?.fields as Record<string, string> | undefined,
      );
    };
    return {
      get: (path, query) => call('get', `${path}${queryString(query)}`),
      send: (method, path, body) => call(method, path, body),
    };
  }
}

/** The console's own refusals (a missing confirmation) in the same shape as the API's. */
export function consoleRefusal(code: AppErrorCode, message: string, fields?: Record<string, string>): AdminCallError {
  const error = new AppError(code, message);
  return new AdminCallError(error.status, code, message, fields);
}
