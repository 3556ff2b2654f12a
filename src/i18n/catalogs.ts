/**
 * Message catalogs: locales/<tag>.json, one key per message, read with i18next (maintained, plural
 * rules from Intl.PluralRules, named placeholders `{{name}}`). Loaded once, synchronously, at import:
 * the files are small and every page needs them.
 *
 * Two ways to translate: `t` returns plain text, for `<%= %>` in templates (EJS escapes it) and for
 * mails; `html` escapes the placeholders' values but keeps the catalog's own markup (`<strong>`), for
 * `<%- %>`. The catalogs are ours and reviewed; what a person or a client typed only ever arrives as a
 * placeholder value.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import i18next, { type TOptions } from 'i18next';

import { SUPPORTED_LOCALES, type Locale } from './locales.ts';

export const LOCALES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'locales');

export function readCatalog(locale: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(LOCALES_DIR, `${locale}.json`), 'utf8')) as Record<string, unknown>;
}

const instance = i18next.createInstance();
void instance.init({
  initAsync: false,
  resources: Object.fromEntries(SUPPORTED_LOCALES.map((locale) => [locale, { translation: readCatalog(locale) }])),
  supportedLngs: [...SUPPORTED_LOCALES],
  // A key missing in one language (the catalog test forbids it) still shows English, never the key.
  fallbackLng: 'en',
  load: 'currentOnly',
  returnNull: false,
  // `{{product}}`: the product's name; pages pass the operator's (http/render.ts), anything else says Tessera.
  interpolation: { escapeValue: false, defaultVariables: { product: 'Tessera' } },
} as Parameters<typeof instance.init>[0]);

export type Vars = Record<string, string | number | undefined>;
export type Translate = (key: string, vars?: Vars) => string;

export interface Translator {
  readonly locale: Locale;
  /** Plain text (escape it where it lands: EJS `<%= %>` does). */
  t: Translate;
  /** HTML: the catalog's markup kept, every placeholder value escaped. For `<%- %>`. */
  html: Translate;
  /** Whether the catalog has this key (for text that may come from elsewhere, such as error messages). */
  has(key: string): boolean;
}

const translators = new Map<Locale, Translator>();

export function translator(locale: Locale): Translator {
  let found = translators.get(locale);
  if (!found) {
    const fixed = instance.getFixedT(locale);
    found = {
      locale,
      t: (key, vars = {}) => fixed(key, vars as TOptions) as string,
      html: (key, vars = {}) => fixed(key, { ...vars, interpolation: { escapeValue: true } } as TOptions) as string,
      has: (key) => instance.exists(key, { lng: locale, fallbackLng: false } as TOptions),
    };
    translators.set(locale, found);
  }
  return found;
}
