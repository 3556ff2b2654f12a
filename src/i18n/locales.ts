/**
 * The languages Tessera speaks, and how a request's preferences are matched to them. Pure: the HTTP
 * layer (http/locale.ts) decides which preferences a request has and in which order.
 */

/** Every language with a catalog in locales/<tag>.json; discovery's `ui_locales_supported`. */
export const SUPPORTED_LOCALES = ['en', 'de', 'fr', 'es', 'pt-BR', 'ja'] as const;

export type Locale = (typeof SUPPORTED_LOCALES)[number];

/** Each language's name in itself, for the switcher: a person looks for their own language's name. */
export const LOCALE_NAMES: Readonly<Record<Locale, string>> = {
  en: 'English',
  de: 'Deutsch',
  fr: 'Français',
  es: 'Español',
  'pt-BR': 'Português (Brasil)',
  ja: '日本語',
};

export function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (SUPPORTED_LOCALES as readonly string[]).includes(value);
}

/**
 * The supported locale for one BCP 47 tag, or undefined: exact (case-insensitive) first, then the
 * primary language, so `de-CH` finds `de` and `pt` or `pt-PT` find `pt-BR`, our only Portuguese.
 */
export function matchLocale(tag: string): Locale | undefined {
  const wanted = tag.trim().toLowerCase();
  if (!wanted || wanted === '*') return undefined;
  const exact = SUPPORTED_LOCALES.find((locale) => locale.toLowerCase() === wanted);
  if (exact) return exact;
  const primary = wanted.split(/[-_]/)[0];
  return SUPPORTED_LOCALES.find((locale) => locale.toLowerCase().split('-')[0] === primary);
}

/** The first supported locale of a space-separated `ui_locales` list (OpenID Connect Core 3.1.2.1). */
export function fromUiLocales(value: unknown): Locale | undefined {
  if (typeof value !== 'string') return undefined;
  for (const tag of value.split(' ').slice(0, 20)) {
    const locale = matchLocale(tag);
    if (locale) return locale;
  }
  return undefined;
}

/**
 * The best supported locale for an Accept-Language header (RFC 9110 12.5.4): by q-value, ties in
 * the order written; `q=0` means "not this one". Header length is bounded before parsing.
 */
export function fromAcceptLanguage(header: string | undefined): Locale | undefined {
  if (!header) return undefined;
  const ranges = header.slice(0, 1000).split(',').slice(0, 30).map((part, index) => {
    const [tag = '', ...params] = part.split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
    return { tag: tag.trim(), q: q === undefined ? 1 : Number(q), index };
  });
  ranges.sort((a, b) => b.q - a.q || a.index - b.index);
  for (const range of ranges) {
    if (range.q <= 0) continue;
    const locale = matchLocale(range.tag);
    if (locale) return locale;
  }
  return undefined;
}
