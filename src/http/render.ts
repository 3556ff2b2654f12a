import type { Context } from 'koa';

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
  const dates = new Intl.DateTimeFormat(i18n.locale, { dateStyle: 'medium', timeZone: 'UTC' });
  const times = new Intl.DateTimeFormat(i18n.locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
  ctx.type = 'html';
  ctx.set('Content-Language', i18n.locale);
  ctx.vary('Accept-Language');
  await ctx.render(view, {
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

/** The page's translator with the product's name as `{{product}}` in every string. */
function branded(i18n: Translator, product: string): Translator {
  return {
    locale: i18n.locale,
    has: i18n.has,
    t: (key, vars) => i18n.t(key, { product, ...vars }),
    html: (key, vars) => i18n.html(key, { product, ...vars }),
  };
}
