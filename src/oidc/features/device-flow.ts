/**
 * The device authorization grant (RFC 8628) as one slice: what oidc-provider needs (its feature
 * configuration, the device code's lifetime), what Tessera needs around it (the protocol paths, which
 * of them authenticate clients, the mTLS alias) and its pages, server-rendered like every other page.
 *
 * The person's side: GET /device shows the user-code form (prefilled from `verification_uri_complete`,
 * but never submitted for them: RFC 8628 section 5.4 wants the person to compare the code with the
 * one the device shows); POST /device shows which app and which device asks, with Allow and Deny;
 * then the usual sign-in and consent, and a page saying the device is signed in. The device's side:
 * POST /device/auth, then polling the token endpoint, told `slow_down` when it polls faster than
 * DEVICE_POLL_INTERVAL (oidc/internals.ts, http/rate-limit.ts). Wrong user codes count per address
 * (RATE_LIMIT_USER_CODE_PER_IP).
 */
import type { Context, Middleware, Next } from 'koa';
import type { Configuration, KoaContextWithOIDC, Provider } from 'oidc-provider';

import type { Config } from '../../config.ts';
import { noteUserCodeMiss } from '../../http/rate-limit.ts';
import type { RenderPage, Slice } from './feature.ts';

type DeviceFlowFeature = NonNullable<NonNullable<Configuration['features']>['deviceFlow']>;

/** The person's page. */
const USER_CODE_PATH = '/device';

const PREFILLED = Symbol('tessera.prefilledUserCode');

type DeviceInfo = { ip?: string; ua?: string };

/** At most this much of a device's User-Agent is kept and shown (shown, never trusted). */
const USER_AGENT_MAX = 256;

function xsrfOf(ctx: KoaContextWithOIDC): string {
  return String((ctx.oidc.session?.state as { secret?: unknown } | undefined)?.secret ?? '');
}

/**
 * Why the form is shown again, in words, and with which status: a code that did not work is a 400.
 * The words are English, like every message below the page layer; the page shows them in its own
 * language from the catalogs' `messages` (i18n/messages.ts), and the views hold the rest of the text.
 */
function problemOf(error: (Error & { name: string; userCode?: string }) | undefined): { message: string | undefined; status: number | undefined; denied: boolean } {
  if (!error) return { message: undefined, status: 200, denied: false };
  switch (error.name) {
    case 'NoCodeError': return { message: 'Enter the code your device shows.', status: 400, denied: false };
    case 'NotFoundError': return { message: 'That code is not right. Check the code on your device and try again.', status: 400, denied: false };
    case 'ExpiredError': return { message: 'That code has expired. Start again on your device to get a new one.', status: 400, denied: false };
    case 'AlreadyUsedError': return { message: 'That code has been used already. Start again on your device to get a new one.', status: 400, denied: false };
    case 'AbortedError': return { message: undefined, status: 200, denied: true };
    // Anything else (a stale form, an outage) keeps the status oidc-provider gave it.
    default: return { message: 'Something went wrong with that code. Start again on your device.', status: undefined, denied: false };
  }
}

function deviceFlowFeature(render: RenderPage): DeviceFlowFeature {
  return {
    enabled: true,
    // Twenty consonants, eight of them: about 34 bits, and no words or look-alike characters (RFC 8628 section 6.1).
    charset: 'base-20',
    mask: '****-****',
    deviceInfo(ctx): DeviceInfo {
      return { ip: ctx.ip, ua: ctx.get('user-agent').slice(0, USER_AGENT_MAX) };
    },
    async userCodeInputSource(ctx, _form, _out, err) {
      const error = err as (Error & { name: string; userCode?: string }) | undefined;
      const problem = problemOf(error);
      if (error?.name === 'NotFoundError') noteUserCodeMiss(ctx);
      if (problem.status !== undefined) ctx.status = problem.status;
      const prefilled = (ctx.state as Record<symbol, string | undefined>)[PREFILLED];
      await render(ctx, 'device', {
        action: USER_CODE_PATH,
        xsrf: xsrfOf(ctx),
        userCode: prefilled ?? error?.userCode ?? '',
        prefilled: prefilled !== undefined,
        error: problem.message,
        denied: problem.denied,
      });
    },
    async userCodeConfirmSource(ctx, _form, client, deviceInfo, userCode) {
      const device = (deviceInfo ?? {}) as DeviceInfo;
      await render(ctx, 'device-confirm', {
        action: USER_CODE_PATH,
        xsrf: xsrfOf(ctx),
        userCode,
        clientName: client.clientName ?? client.clientId,
        device: { ua: typeof device.ua === 'string' && device.ua ? device.ua : undefined, ip: typeof device.ip === 'string' ? device.ip : undefined },
      });
    },
    async successSource(ctx) {
      await render(ctx, 'device-done', {
        clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId,
      });
    },
  };
}

export const deviceFlow: Slice = {
  name: 'device authorization grant',
  paths: [
    // The device's endpoint: a client authenticates there (or names itself, if public) and gets JSON back.
    { path: '/device/auth', fastPath: true, authenticatesClient: true, mtlsAlias: 'device_authorization_endpoint' },
    { path: USER_CODE_PATH, fastPath: false },
    { path: '/device/:uid', fastPath: false },
  ],
  // Entering the code starts the interaction, and it resumes at /device/:uid: offline_access asks consent there too.
  interactionRoutes: ['code_verification', 'device_resume'],
  pages: ['device', 'device-confirm', 'device-done'],
  configure: ({ config, render }) => ({
    features: { deviceFlow: deviceFlowFeature(render) },
    ttl: { DeviceCode: config.ttl.deviceCode },
  }),
};

/** RFC 8628 section 3.2: the device authorization response says how often to poll (oidc-provider leaves it out). */
export function deviceFlowEvents(provider: Provider, config: Config): void {
  provider.on('device_authorization.success', (_ctx: unknown, body: Record<string, unknown>) => {
    body.interval = config.devicePollInterval;
  });
}

/**
 * `verification_uri_complete` carries the user code in the query. oidc-provider would answer it with
 * a page that submits itself by inline script (which the CSP forbids, and which would skip the
 * person's comparison of the codes); the code is taken out of the query here and shown in the form.
 */
export function prefillUserCode(): Middleware {
  return function prefillFromVerificationUri(ctx: Context, next: Next) {
    if (ctx.method !== 'GET' || ctx.path !== USER_CODE_PATH || typeof ctx.query.user_code !== 'string') return next();
    (ctx.state as Record<symbol, string>)[PREFILLED] = ctx.query.user_code.slice(0, 64);
    ctx.querystring = '';
    return next();
  };
}
