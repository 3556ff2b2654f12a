/**
 * The consent step: what the app asks for, in words, and POST /consent, which records the grant
 * (or the refusal) and finishes the interaction. The grant is the one oidc-provider found for this
 * account and client (remembered across sessions, oidc/account-grant.ts), or a new one.
 *
 * A first-party app (`tessera_first_party`, `clients create --first-party`) is the operator's own,
 * as in Auth0: the person is not asked, and the grant is made for what the app requested, as if
 * they had allowed it (offline_access included, so the app gets its refresh token).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';

import type { SecurityEvents } from '../domain/events.ts';
import { redirectHosts } from '../domain/registered-clients.ts';
import { AppError } from '../errors.ts';
import { formField } from '../http/form.ts';
import { pageTranslator } from '../http/locale.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';
import { describeClaims, describeScopes } from '../domain/scopes.ts';
import type { Interaction, InteractionToolkit, SignInStep } from './toolkit.ts';

export interface ConsentStep extends SignInStep {
  showConsent(ctx: Context, interaction: Interaction): Promise<void>;
}

/** Finds a resource server by its indicator, for the API's name on the page. */
export type ResourceNames = (audience: string) => Promise<{ name?: string | undefined } | undefined>;

/** The signed-in account's email, for "Signed in as" on the consent page. */
export type AccountEmail = (sub: string) => Promise<string | undefined>;

/**
 * "Not you?": the same authorization request again with prompt=login, so the person signs in with
 * another account and the app still gets its answer. Only the parameters oidc-provider recognised
 * (interaction.params) are carried; a login_hint is dropped, since it named the account being left.
 */
export function switchAccountUrl(params: Record<string, unknown>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (typeof value === 'string' && name !== 'prompt' && name !== 'login_hint') query.set(name, value);
  }
  query.set('prompt', 'login');
  return `/auth?${query}`;
}

/** The host the app's answer goes to: the one domain a person can check, whatever the app calls itself. */
function hostOf(uri: string): string | undefined {
  try {
    const url = new URL(uri);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.host : undefined;
  } catch {
    return undefined;
  }
}

export function consent({ toolkit, logger, events, resources, accountEmail }: { toolkit: InteractionToolkit; logger: Logger; events: SecurityEvents; resources?: ResourceNames | undefined; accountEmail?: AccountEmail | undefined }): ConsentStep {
  const { provider, loadInteraction, clientOf, finish } = toolkit;

  async function showConsent(ctx: Context, interaction: Interaction): Promise<void> {
    const client = await provider().Client.find(String(interaction.params.client_id));
    if (client?.metadata().tessera_first_party === true) return grantConsent(ctx, interaction, true);
    return renderConsent(ctx, interaction);
  }

  async function renderConsent(ctx: Context, interaction: Interaction) {
    const details = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    const requested = String(interaction.params.scope ?? '').split(' ').filter(Boolean);
    const claimsParam = typeof interaction.params.claims === 'string' ? safeClaimNames(interaction.params.claims) : [];
    // RFC 8707: which APIs the app would act on, by name, and its own address for each.
    const { t } = pageTranslator(ctx);
    const apis = await Promise.all(Object.entries(details.missingResourceScopes ?? {}).map(async ([audience, scopes]) => ({
      audience,
      name: (await resources?.(audience))?.name ?? audience,
      scopes: describeScopes(scopes, t),
    })));
    const apiScopes = new Set(apis.flatMap((api) => api.scopes.map((scope) => scope.scope)));
    const redirectUri = typeof interaction.params.redirect_uri === 'string' ? interaction.params.redirect_uri : '';
    const device = await deviceOf(interaction);
    const sub = interaction.session?.accountId;
    const email = typeof sub === 'string' ? await accountEmail?.(sub) : undefined;
    await renderPage(ctx, 'consent', {
      uid: interaction.uid,
      client: await clientOf(interaction),
      device,
      account: email ? { email } : undefined,
      // A device's request cannot be started again from this browser: no switch link there.
      switchAccount: email && !device ? switchAccountUrl(interaction.params) : undefined,
      appDomain: redirectUri ? hostOf(redirectUri) : undefined,
      // A self-registered client's name is its own claim; where the answer goes is not.
      redirectHost: redirectHosts(redirectUri ? [redirectUri] : [])[0],
      scopes: describeScopes((requested.length ? requested : details.missingOIDCScope ?? []).filter((scope) => !apiScopes.has(scope)), t),
      apis,
      claims: describeClaims([...(details.missingOIDCClaims ?? []), ...claimsParam], t),
    });
  }

  /**
   * For the device authorization grant, the device that asked (RFC 8628 section 5.4): what its
   * User-Agent and address said when it asked, so the person can tell their TV from someone else's.
   */
  async function deviceOf(interaction: Interaction): Promise<{ ua?: string; ip?: string } | undefined> {
    const deviceCode = (interaction as { deviceCode?: unknown }).deviceCode;
    if (typeof deviceCode !== 'string') return undefined;
    const code = await provider().DeviceCode.find(deviceCode, { ignoreExpiration: true, ignoreSessionBinding: true } as object);
    const info = (code as { deviceInfo?: { ua?: unknown; ip?: unknown } } | undefined)?.deviceInfo;
    return {
      ...(typeof info?.ua === 'string' && info.ua && { ua: info.ua }),
      ...(typeof info?.ip === 'string' && { ip: info.ip }),
    };
  }

  function register(router: Router): void {
    router.post('/consent', async function submitConsent(ctx) {
      const interaction = await loadInteraction(ctx);
      if (interaction.prompt.name !== 'consent') throw new AppError('ERR_INVALID_INPUT', 'There is nothing to consent to yet.');
      const decision = formField(ctx, 'decision');
      if (decision === 'deny') {
        logger.info({ sub: interaction.session?.accountId, clientId: interaction.params.client_id }, 'consent denied');
        events.emit({
          type: 'consent.denied',
          ...(typeof interaction.session?.accountId === 'string' && { sub: interaction.session.accountId }),
          clientId: String(interaction.params.client_id),
        });
        return finish(ctx, { error: 'access_denied', error_description: 'The person declined to grant access' });
      }
      if (decision !== 'allow') throw new AppError('ERR_INVALID_INPUT', 'Choose Allow or Deny.');
      await grantConsent(ctx, interaction, false);
    });
  }

  /** Adds what the consent prompt found missing to the grant, and finishes the interaction. */
  async function grantConsent(ctx: Context, interaction: Interaction, firstParty: boolean): Promise<void> {
    const { Grant } = provider();
    const accountId = interaction.session?.accountId;
    const clientId = String(interaction.params.client_id);
    const grant = (interaction.grantId ? await Grant.find(interaction.grantId) : undefined) ?? new Grant({ accountId, clientId });
    const details = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    logger.info({ sub: accountId, clientId, firstParty }, firstParty ? 'consent given for a first-party app' : 'consent given');
    events.emit({
      type: 'consent.given',
      ...(typeof accountId === 'string' && { sub: accountId }),
      clientId,
      details: {
        scopes: details.missingOIDCScope ?? [],
        claims: details.missingOIDCClaims ?? [],
        resources: Object.entries(details.missingResourceScopes ?? {}).map(([indicator, scopes]) => `${indicator} ${scopes.join(' ')}`),
        ...(firstParty && { firstParty: true }),
      },
    });
    await finish(ctx, { consent: { grantId } });
  }

  return { register, showConsent };
}

/** Claim names from a `claims` request parameter (already validated by oidc-provider). */
function safeClaimNames(claims: string): string[] {
  try {
    const parsed = JSON.parse(claims) as { id_token?: object; userinfo?: object };
    return [...Object.keys(parsed.id_token ?? {}), ...Object.keys(parsed.userinfo ?? {})];
  } catch {
    return [];
  }
}
