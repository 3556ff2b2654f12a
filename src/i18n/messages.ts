/**
 * The English messages the domain and HTTP layers put in errors (AppError messages, password-policy
 * problems), shown in the person's language. The domain stays free of languages (the admin API and
 * the CLI answer in English, and tests assert on the text); the page layer looks each message up in
 * the `messages` section of the English catalog, where `{{name}}` stands for a value, and renders
 * the same key in the page's language. A message that is not in the catalog is shown as it is.
 */
import { readCatalog, type Translator, type Vars } from './catalogs.ts';

interface Pattern {
  key: string;
  regex: RegExp;
  names: string[];
}

const PATTERNS: Pattern[] = Object.entries(readCatalog('en').messages as Record<string, string>).map(([key, text]) => {
  const names: string[] = [];
  const source = text.split(/(\{\{\s*\w+\s*\}\})/).map((part) => {
    const name = /^\{\{\s*(\w+)\s*\}\}$/.exec(part)?.[1];
    if (!name) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    names.push(name);
    return '(.+?)';
  }).join('');
  return { key: `messages.${key}`, regex: new RegExp(`^${source}$`), names };
});

const DURATION = /^(\d+) (second|minute|hour|day)s?$/;

/** A value captured from an English message, itself in the page's language when it is a duration. */
function localizeValue(i18n: Translator, value: string): string {
  const duration = DURATION.exec(value);
  return duration ? i18n.t(`duration.${duration[2]}`, { count: Number(duration[1]) }) : value;
}

function localizeSentence(i18n: Translator, sentence: string): string | undefined {
  for (const { key, regex, names } of PATTERNS) {
    const match = regex.exec(sentence);
    if (!match) continue;
    const vars: Vars = {};
    names.forEach((name, index) => { vars[name] = localizeValue(i18n, match[index + 1] ?? ''); });
    return i18n.t(key, vars);
  }
  return undefined;
}

/**
 * The message in the translator's language. Registration joins several problems with ". ", so a
 * message that is not one known sentence is tried sentence by sentence.
 */
export function localizeMessage(i18n: Translator, message: string): string {
  if (i18n.locale === 'en') return message;
  const whole = localizeSentence(i18n, message);
  if (whole !== undefined) return whole;
  const parts = message.split('. ').map((part, index, all) => localizeSentence(i18n, part) ?? (index < all.length - 1 ? localizeSentence(i18n, `${part}.`) : undefined));
  if (parts.some((part) => part === undefined)) return message;
  return parts.join(i18n.locale === 'ja' ? '' : ' ');
}
