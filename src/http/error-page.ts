/**
 * What the error page says beyond the error itself: the situation in plain words, chosen by the
 * OAuth error name (the one table in errors.ts names Tessera's own), and a way back to the app when
 * the app is known. The way back is only ever an address the app registered (its client_uri, else
 * the origin of one of its redirect URIs), never one a request named: a bad request must not be able
 * to turn the error page into a link to anywhere.
 */
export type ErrorSituation = 'client' | 'redirect' | 'expired' | 'not-found' | 'other';

const SITUATIONS: Readonly<Record<string, ErrorSituation>> = {
  invalid_client: 'client',
  invalid_redirect_uri: 'redirect',
  interaction_expired: 'expired',
  not_found: 'not-found',
};

export function errorSituation(error: string | undefined): ErrorSituation {
  return (error && SITUATIONS[error]) || 'other';
}

export interface AppLink {
  readonly name: string;
  readonly href: string;
}

function webOrigin(value: unknown, whole: boolean): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    return whole ? url.href : url.origin;
  } catch {
    return undefined;
  }
}

/** oidc-provider's client (camelCase metadata), or Tessera's client view. */
export interface KnownClient {
  readonly clientId?: unknown;
  readonly clientName?: unknown;
  readonly clientUri?: unknown;
  readonly redirectUris?: unknown;
}

export function appLink(client: KnownClient | undefined): AppLink | undefined {
  if (!client) return undefined;
  const registered = Array.isArray(client.redirectUris) ? client.redirectUris : [];
  const href = webOrigin(client.clientUri, true) ?? registered.map((uri) => webOrigin(uri, false)).find(Boolean);
  if (!href) return undefined;
  const name = typeof client.clientName === 'string' && client.clientName ? client.clientName : new URL(href).host;
  return { name, href };
}
