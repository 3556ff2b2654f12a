/**
 * Which language a page (and the mail it causes) is in, first match wins:
 * 1. `ui_locales` of the authorization request (carried on the interaction, or on oidc-provider's own
 *    pages in its params), unless the person picked a language on a page of that same request;
 * 2. the language the person picked with the switcher, remembered in the `tessera.lang` cookie;
 * 3. Accept-Language, negotiated (`de-CH` finds `de`, `pt` finds `pt-BR`);
 * 4. DEFAULT_LOCALE.
 * The exception in 1 is on purpose: otherwise the switcher would do nothing on a sign-in page whose app
 * sent `ui_locales`. The cookie remembers which request the pick was made in (a digest of its PKCE
 * `code_challenge`, the same on every page of one request), so the next request's `ui_locales` wins again.
 */
import { createHash } from 'node:crypto';

import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware, Next } from 'koa';

import { AppError } from '../errors.ts';
import { translator, type Translator } from '../i18n/catalogs.ts';
import { fromAcceptLanguage, fromUiLocales, isLocale, LOCALE_NAMES, SUPPORTED_LOCALES, type Locale } from '../i18n/locales.ts';
import { LANGUAGE_COOKIE, hostCookieName } from './cookie-names.ts';
import { formField } from './form.ts';

export const LANGUAGE_PATH = '/language';
const ONE_YEAR_MS = 365 * 86_400_000;
const REQUEST_TAG = /^[A-Za-z0-9_-]{16}$/;

/** What the interaction toolkit learns when it loads an interaction. */
interface RequestedLocales {
  uiLocales: unknown;
  /** Names this authorization request in the cookie, without telling anything about it. */
  request: string | undefined;
}

/** Called with `interaction.params` whenever an interaction is loaded. */
export function rememberRequestedLocales(ctx: Context, params: Record<string, unknown>): void {
  const challenge = typeof params.code_challenge === 'string' ? params.code_challenge : undefined;
  const request = challenge ? createHash('sha256').update(`tessera language\0${challenge}`).digest('base64url').slice(0, 16) : undefined;
  ctx.state.requestedLocales = { uiLocales: params.ui_locales, request } satisfies RequestedLocales;
  delete ctx.state.locale;
}

/** Sets the instance's DEFAULT_LOCALE for every request; cheap, so it runs before the protocol fork. */
export function defaultLocale(locale: Locale): Middleware {
  return function setDefaultLocale(ctx: Context, next: Next) {
    ctx.state.defaultLocale = locale;
    return next();
  };
}

interface Pick {
  locale: Locale;
  request: string | undefined;
}

/** The cookie's value: `<locale>` or `<locale>.<request tag>`. Anything else is ignored, never an error. */
function readPick(ctx: Context): Pick | undefined {
  const value = ctx.cookies.get(hostCookieName(ctx, LANGUAGE_COOKIE));
  const match = value ? /^([A-Za-z-]{2,8})(?:\.([A-Za-z0-9_-]{16}))?$/.exec(value) : null;
  return match && isLocale(match[1]) ? { locale: match[1], request: match[2] } : undefined;
}

function resolve(ctx: Context): Locale {
  const pick = readPick(ctx);
  const requested = ctx.state.requestedLocales as RequestedLocales | undefined;
  const oidcParams = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
  const uiLocales = fromUiLocales(requested?.uiLocales ?? oidcParams?.ui_locales);
  const pickedHere = pick?.request !== undefined && pick.request === requested?.request;
  if (uiLocales && !pickedHere) return uiLocales;
  if (pick) return pick.locale;
  const accepted = fromAcceptLanguage(ctx.get('Accept-Language'));
  if (accepted) return accepted;
  return isLocale(ctx.state.defaultLocale) ? ctx.state.defaultLocale : 'en';
}

/** The page's locale, resolved once per request (again after an interaction is loaded). */
export function pageLocale(ctx: Context): Locale {
  if (!isLocale(ctx.state.locale)) ctx.state.locale = resolve(ctx);
  return ctx.state.locale as Locale;
}

export function pageTranslator(ctx: Context): Translator {
  return translator(pageLocale(ctx));
}

/** Only a path on this site, so the switcher cannot be made to send a person elsewhere. */
function safeReturn(value: string | undefined): string {
  return value && /^\/(?![/\\])[^\s\\]*$/.test(value) && value.length <= 2000 ? value : '/';
}

/** What the switcher in every page's footer needs: the choices, and the page to come back to. */
export function languageSwitcher(ctx: Context): { current: Locale; choices: Array<{ locale: Locale; name: string }>; returnTo: string; request: string } {
  return {
    request: (ctx.state.requestedLocales as RequestedLocales | undefined)?.request ?? '',
    current: pageLocale(ctx),
    choices: SUPPORTED_LOCALES.map((locale) => ({ locale, name: LOCALE_NAMES[locale] })),
    // After a POST the page's own address may not answer GET, but every page that renders after a POST
    // (a form shown again with its error) also answers GET at its path.
    returnTo: safeReturn(ctx.method === 'GET' ? ctx.originalUrl : ctx.path),
  };
}

/**
 * POST /language: remembers the pick and goes back to the page. No CSRF token (the switcher is on
 * pages without one, such as oidc-provider's error page), so a cross-site form is refused by its
 * Origin: the worst it could do is change someone's language, but there is no reason to let it.
 */
export function languageRoute(issuer: string): Middleware {
  const origin = new URL(issuer).origin;
  const parseForm = bodyParser({ enableTypes: ['form'], formLimit: '4kb', encoding: 'utf-8' });
  return async function switchLanguage(ctx: Context, next: Next) {
    if (ctx.path !== LANGUAGE_PATH) return next();
    if (ctx.method !== 'POST') throw new AppError('ERR_NOT_FOUND', 'There is nothing at this address.');
    const sentOrigin = ctx.get('Origin');
    if ((sentOrigin && sentOrigin !== origin) || ctx.get('Sec-Fetch-Site') === 'cross-site') {
      throw new AppError('ERR_CSRF', 'This form expired or did not come from this site. Go back, reload the page and try again.');
    }
    await parseForm(ctx, async () => {});
    const locale = formField(ctx, 'lang');
    if (!isLocale(locale)) throw new AppError('ERR_INVALID_INPUT', `Choose one of: ${SUPPORTED_LOCALES.join(', ')}.`);
    const request = formField(ctx, 'request');
    ctx.cookies.set(hostCookieName(ctx, LANGUAGE_COOKIE), REQUEST_TAG.test(request) ? `${locale}.${request}` : locale, {
      httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/', maxAge: ONE_YEAR_MS,
    });
    ctx.status = 303;
    ctx.redirect(safeReturn(formField(ctx, 'return')));
  };
}
