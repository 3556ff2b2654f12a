/**
 * What Tessera's own first-party clients (the account page, the admin console) share when they sign
 * people in through Tessera itself: signed JSON cookies (httpOnly, SameSite=Lax, `__Host-` over TLS),
 * and an openid-client configuration whose discovery, JWKS and code exchange stay in this process.
 */
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import * as oidc from 'openid-client';

import { hostCookieName } from '../http/cookie-names.ts';
import { inProcessFetch } from './in-process-fetch.ts';

/** `__Host-` needs Path=/, so every first-party cookie is on the whole site. */
const COOKIE_PATH = '/';

export function readSignedJson<T>(ctx: Context, name: string): T | undefined {
  const raw = ctx.cookies.get(hostCookieName(ctx, name), { signed: true });
  if (!raw) return undefined;
  try {
    return JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

export function writeSignedJson(ctx: Context, name: string, value: unknown, maxAgeSeconds: number): void {
  ctx.cookies.set(hostCookieName(ctx, name), Buffer.from(JSON.stringify(value)).toString('base64url'), {
    signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: COOKIE_PATH, maxAge: maxAgeSeconds * 1000, overwrite: true,
  });
}

export function clearSigned(ctx: Context, name: string): void {
  ctx.cookies.set(hostCookieName(ctx, name), null, { signed: true, secure: ctx.secure, path: COOKIE_PATH, overwrite: true });
}

/**
 * One openid-client configuration per provider instance: a key rotation rebuilds the provider, and
 * with it comes a fresh configuration that fetches the new JWKS. A failed discovery is forgotten.
 */
export class InProcessClient {
  readonly #issuer: string;
  readonly #clientId: string;
  readonly #provider: () => Provider;
  readonly #configurations = new WeakMap<Provider, Promise<oidc.Configuration>>();

  constructor(issuer: string, clientId: string, provider: () => Provider) {
    this.#issuer = issuer;
    this.#clientId = clientId;
    this.#provider = provider;
  }

  configuration(): Promise<oidc.Configuration> {
    const provider = this.#provider();
    let configuration = this.#configurations.get(provider);
    if (!configuration) {
      configuration = oidc.discovery(new URL(this.#issuer), this.#clientId, { id_token_signed_response_alg: 'RS256' }, oidc.None(), {
        [oidc.customFetch]: inProcessFetch(() => provider.callback()) as oidc.CustomFetch,
        // Nothing leaves the process, so an http issuer (development, tests) is no risk here.
        execute: [oidc.allowInsecureRequests],
      });
      configuration.catch(() => this.#configurations.delete(provider));
      this.#configurations.set(provider, configuration);
    }
    return configuration;
  }
}
