/**
 * What oidc-provider does with tokens, as security events and metrics. Every token endpoint success
 * is counted (tessera_tokens_issued_total, by grant type and client); only tokens issued to people
 * (authorization_code, refresh_token, ...) are `token.issued` events: client_credentials tokens are
 * machine traffic at thousands per second, and recording each would put a store write on the path
 * that must stay free of them (a JWT client_credentials request writes nothing). Revocations are
 * always events: by the revocation endpoint, on refresh token or code reuse, at sign-out.
 *
 * No token value or token id (an opaque token's id is the token) ever leaves this module.
 */
import { Provider, type KoaContextWithOIDC } from 'oidc-provider';

import type { SecurityEvents } from '../domain/events.ts';
import type { Metrics } from './metrics.ts';

interface TokenLike {
  accountId?: unknown;
  clientId?: unknown;
  grantId?: unknown;
}

const REVOCABLE = ['access_token', 'refresh_token', 'client_credentials'] as const;

export function observeProvider(provider: Provider, { events, metrics }: { events?: SecurityEvents | undefined; metrics?: Metrics | undefined }): void {
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const grantType = String(ctx.oidc.params?.grant_type ?? 'unknown');
    const clientId = ctx.oidc.client?.clientId ?? 'unknown';
    metrics?.tokenIssued(grantType, clientId);
    if (!events || grantType === 'client_credentials') return;
    const body = (ctx.body ?? {}) as { scope?: unknown; refresh_token?: unknown; id_token?: unknown };
    const sub = ctx.oidc.account?.accountId ?? stringOf((ctx.oidc.entities as { RefreshToken?: TokenLike }).RefreshToken?.accountId);
    events.emit({
      type: 'token.issued',
      ...(sub !== undefined && { sub }),
      clientId,
      details: {
        grantType,
        scope: typeof body.scope === 'string' ? body.scope : '',
        refreshToken: body.refresh_token !== undefined,
        idToken: body.id_token !== undefined,
      },
    });
  });
  if (!events) return;

  // The typings list each model event separately; these three share one listener.
  const emitter = provider as unknown as { on(event: string, listener: (token: TokenLike) => void): unknown };
  for (const kind of REVOCABLE) {
    emitter.on(`${kind}.destroyed`, (token) => {
      // Tokens are also destroyed on the way (a rotated refresh token); only the revocation endpoint revokes.
      if (Provider.ctx?.oidc?.route !== 'revocation') return;
      const sub = stringOf(token.accountId);
      const clientId = stringOf(token.clientId);
      const grantId = stringOf(token.grantId);
      events.emit({
        type: 'token.revoked',
        ...(sub !== undefined && { sub }),
        ...(clientId !== undefined && { clientId }),
        details: { tokenType: kind, reason: 'revocation_endpoint', ...(grantId !== undefined && { grantId }) },
      });
    });
  }

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    const route = ctx.oidc?.route;
    if (route === 'revocation') return;
    const sub = ctx.oidc.session?.accountId ?? stringOf((ctx.oidc.entities as { RefreshToken?: TokenLike; AuthorizationCode?: TokenLike }).RefreshToken?.accountId
      ?? (ctx.oidc.entities as { AuthorizationCode?: TokenLike }).AuthorizationCode?.accountId);
    const clientId = ctx.oidc.client?.clientId;
    events.emit({
      type: 'token.revoked',
      ...(sub !== undefined && { sub }),
      ...(clientId !== undefined && { clientId }),
      // At the token endpoint a grant is revoked because a used code or refresh token came back.
      details: { reason: route === 'token' ? 'reuse_detected' : route === 'end_session' ? 'signed_out' : String(route), grantId: String(grantId) },
    });
  });

  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const sub = ctx.oidc.session?.accountId;
    const clientId = ctx.oidc.client?.clientId;
    events.emit({
      type: 'session.ended',
      ...(sub !== undefined && { sub }),
      ...(clientId !== undefined && { clientId }),
      details: { reason: 'signed_out' },
    });
  });
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
