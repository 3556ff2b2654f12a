import type { Context } from 'koa';

import { BoundedMap } from '../bounded-map.ts';
import type { Translator } from '../i18n/catalogs.ts';
import { localizeMessage } from '../i18n/messages.ts';
import { DEFAULT_BRAND, type PageBrand } from './branding.ts';
import { languageSwitcher, pageTranslator } from './locale.ts';

/**
 * Renders a page with the locals every template relies on. Pages are server-rendered and work
 * without JavaScript; forms read `csrfToken`. Every template gets the page's language (`lang`, for
 * `<html lang>`), `t` (plain text, for `<%= %>`), `html` (catalog markup kept and values escaped,
 * for `<%- %>`), `message` (an English error message in the page's language), date formatters in
 * the page's locale, the language switcher, and the operator's `brand` (http/branding.ts); every
 * catalog string may say `{{product}}`, the product's name.
 */
export async function renderPage(ctx: Context, view: string, locals: Record<string, unknown> = {}): Promise<void> {
  const brand = (ctx.state.brand as PageBrand | undefined) ?? DEFAULT_BRAND;
  const i18n = branded(pageTranslator(ctx), brand.productName);
  const { dates, times } = formattersFor(i18n.locale);
  ctx.type = 'html';
  ctx.set('Content-Language', i18n.locale);
  ctx.vary('Accept-Language');
  // With its extension koa-views finds the template with one stat; without, the first stat fails
  // (an ENOENT error built and thrown) and a second one is queued on libuv's pool behind any hashes.
  await ctx.render(`${view}.ejs`, {
    csrfToken: ctx.state.csrfToken,
    lang: i18n.locale,
    t: i18n.t,
    html: i18n.html,
    message: (text: unknown) => (typeof text === 'string' ? localizeMessage(i18n, text) : text),
    formatDate: (date: Date) => dates.format(date),
    /** Times are shown in UTC, said so, in the locale's own format: the server does not know the person's zone. */
    formatTime: (date: Date) => i18n.t('layout.utc', { time: times.format(date) }),
    switcher: languageSwitcher(ctx),
    brand,
    ...locals,
  });
}

/** Date formatters per locale, made once: building an Intl.DateTimeFormat costs more than rendering most pages. */
const formatters = new Map<string, { dates: Intl.DateTimeFormat; times: Intl.DateTimeFormat }>();

function formattersFor(locale: string): { dates: Intl.DateTimeFormat; times: Intl.DateTimeFormat } {
  let made = formatters.get(locale);
  if (made === undefined) {
    made = {
      dates: new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeZone: 'UTC' }),
      times: new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }),
    };
    // The locales are the catalogs' (a handful), so this stays small.
    formatters.set(locale, made);
  }
  return made;
}

/** The page's translator with the product's name as `{{product}}` in every string. */
function branded(i18n: Translator, product: string): Translator {
  return {
    locale: i18n.locale,
    has: i18n.has,
    t: (key, vars) => (vars === undefined ? remembered('t', i18n, product, key) : i18n.t(key, { product, ...vars })),
    html: (key, vars) => (vars === undefined ? remembered('html', i18n, product, key) : i18n.html(key, { product, ...vars })),
  };
}

/**
 * A page asks for dozens of fixed strings (labels, headings), each an i18next lookup and
 * interpolation: the ones without values of their own are translated once per language and product
 * name. The catalogs do not change while the server runs.
 */
const fixedStrings = new BoundedMap<string, string>(20_000);

function remembered(kind: 't' | 'html', i18n: Translator, product: string, key: string): string {
  const id = `${kind}\0${i18n.locale}\0${product}\0${key}`;
  let text = fixedStrings.get(id);
  if (text === undefined) {
    text = i18n[kind](key, { product });
    // Keys come from the templates and the code, not from requests; the bound is only a guard.
    fixedStrings.set(id, text);
  }
  return text;
}
