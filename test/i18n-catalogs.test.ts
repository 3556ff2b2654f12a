/**
 * The catalogs agree: every language has exactly the keys English has (plural forms by each
 * language's own plural rules), the same placeholders, and no empty message. Pure logic over the
 * files in locales/, so a unit test.
 */
import { readdirSync, readFileSync } from 'node:fs';

import test from 'ava';

import { LOCALES_DIR, readCatalog, translator } from '../src/i18n/catalogs.ts';
import { fromAcceptLanguage, fromUiLocales, SUPPORTED_LOCALES } from '../src/i18n/locales.ts';
import { localizeMessage } from '../src/i18n/messages.ts';

const PLURAL = /_(zero|one|two|few|many|other)$/;

function flatten(catalog: Record<string, unknown>, prefix = ''): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [key, value] of Object.entries(catalog)) {
    if (value !== null && typeof value === 'object') {
      for (const [inner, text] of flatten(value as Record<string, unknown>, `${prefix}${key}.`)) entries.set(inner, text);
    } else {
      entries.set(`${prefix}${key}`, String(value));
    }
  }
  return entries;
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((match) => match[1] ?? '').sort();
}

type Catalog = Record<string, unknown>;

/** Keys without plural suffixes, each with the plural forms and placeholders it has. */
function messages(catalog: Catalog): Map<string, { forms: Set<string>; placeholders: Set<string> }> {
  const result = new Map<string, { forms: Set<string>; placeholders: Set<string> }>();
  for (const [key, text] of flatten(catalog)) {
    const plural = PLURAL.exec(key);
    const base = plural ? key.slice(0, plural.index) : key;
    const entry = result.get(base) ?? { forms: new Set<string>(), placeholders: new Set<string>() };
    entry.forms.add(plural?.[1] ?? '');
    // {{count}} aside: a singular may say "One" instead of the number.
    for (const name of placeholders(text)) if (name !== 'count') entry.placeholders.add(name);
    result.set(base, entry);
  }
  return result;
}

/** Every way a catalog disagrees with English, one line each. */
function catalogProblems(locale: string, catalog: Catalog, englishCatalog: Catalog): string[] {
  const problems: string[] = [];
  const english = messages(englishCatalog);
  const ours = messages(catalog);
  const categories = new Set<string>(new Intl.PluralRules(locale).resolvedOptions().pluralCategories);
  for (const key of english.keys()) if (!ours.has(key)) problems.push(`${locale}: lacks ${key}`);
  for (const [key, entry] of ours) {
    const reference = english.get(key);
    if (!reference) {
      problems.push(`${locale}: has ${key}, which English does not`);
      continue;
    }
    const want = [...reference.placeholders].sort().join(',');
    const have = [...entry.placeholders].sort().join(',');
    if (want !== have) problems.push(`${locale}: ${key} has placeholders {${have}}, English {${want}}`);
    if (reference.forms.has('')) {
      if (!entry.forms.has('') || entry.forms.size !== 1) problems.push(`${locale}: ${key} is a plural here but not in English`);
      continue;
    }
    if (!entry.forms.has('other')) problems.push(`${locale}: ${key} lacks its "other" form`);
    if (categories.has('one') && !entry.forms.has('one')) problems.push(`${locale}: ${key} lacks its "one" form`);
    for (const form of entry.forms) if (!categories.has(form)) problems.push(`${locale}: ${key}_${form} is not a plural form of ${locale}`);
  }
  for (const [key, text] of flatten(catalog)) if (!text.trim()) problems.push(`${locale}: ${key} is empty`);
  return problems;
}

test('there is one catalog for each supported language and no other', (t) => {
  const files = readdirSync(LOCALES_DIR).filter((file) => file.endsWith('.json')).map((file) => file.slice(0, -'.json'.length)).sort();
  t.deepEqual(files, [...SUPPORTED_LOCALES].sort());
});

test('every catalog has exactly the keys and placeholders of English, with its own plural forms', (t) => {
  const english = readCatalog('en');
  t.deepEqual(SUPPORTED_LOCALES.flatMap((locale) => catalogProblems(locale, readCatalog(locale), english)), []);
});

test('the catalog check reports a missing key, an extra key, a changed placeholder and a wrong plural form', (t) => {
  const english = readCatalog('en');
  const german = structuredClone(readCatalog('de')) as Record<string, Record<string, unknown>>;
  delete german.login!.submit;
  german.login!.extra = 'Extra';
  german.consent!.heading = '{{app}} möchte auf Ihr Konto zugreifen';
  german.duration!.day_few = '{{count}} Tage';
  t.deepEqual(catalogProblems('de', german, english).sort(), [
    'de: consent.heading has placeholders {app}, English {client}',
    'de: duration.day_few is not a plural form of de',
    'de: has login.extra, which English does not',
    'de: lacks login.submit',
  ]);
});

test('Accept-Language is negotiated by quality, region variants find their language, and pt finds pt-BR', (t) => {
  t.is(fromAcceptLanguage('de-CH, en;q=0.5'), 'de');
  t.is(fromAcceptLanguage('pt'), 'pt-BR');
  t.is(fromAcceptLanguage('pt-PT;q=0.9, fr;q=0.8'), 'pt-BR');
  t.is(fromAcceptLanguage('nl, fr;q=0.4, ja;q=0.6'), 'ja');
  t.is(fromAcceptLanguage('ja;q=0, es'), 'es');
  t.is(fromAcceptLanguage('*'), undefined);
  t.is(fromAcceptLanguage('nl, sv'), undefined);
  t.is(fromAcceptLanguage(undefined), undefined);
  t.is(fromUiLocales('nl ja de'), 'ja');
  t.is(fromUiLocales('fr-CA'), 'fr');
  t.is(fromUiLocales(42), undefined);
});

test('English error messages from the domain come out in the page language, values and all', (t) => {
  const german = translator('de');
  t.is(localizeMessage(german, 'Invalid email or password'), 'E-Mail oder Passwort ist falsch.');
  t.is(localizeMessage(german, 'Use at least 12 characters for your password'), 'Verwenden Sie mindestens 12 Zeichen für Ihr Passwort.');
  t.is(localizeMessage(german, 'Too many attempts. Try again in 5 minutes.'), 'Zu viele Versuche. Versuchen Sie es in 5 Minuten noch einmal.');
  t.is(
    localizeMessage(german, 'Enter a valid email address. Use at least 12 characters for your password'),
    'Geben Sie eine gültige E-Mail-Adresse ein. Verwenden Sie mindestens 12 Zeichen für Ihr Passwort.',
    'registration joins several problems; each is translated',
  );
  t.is(localizeMessage(translator('ja'), 'Invalid email or password'), 'メールアドレスまたはパスワードが正しくありません。');
  t.is(
    localizeMessage(german, 'Example ID did not answer in time. Try again, or use another way to sign in.'),
    'Example ID hat nicht rechtzeitig geantwortet. Versuchen Sie es noch einmal oder melden Sie sich auf andere Weise an.',
    'an upstream provider\'s name is carried over',
  );
  t.is(localizeMessage(german, 'something nobody wrote down'), 'something nobody wrote down', 'unknown text stays as it is');
  t.is(localizeMessage(translator('en'), 'Invalid email or password'), 'Invalid email or password');
});

test('plural forms follow each language: one and other in German, other only in Japanese', (t) => {
  t.is(translator('de').t('duration.minute', { count: 1 }), '1 Minute');
  t.is(translator('de').t('duration.minute', { count: 30 }), '30 Minuten');
  t.is(translator('ja').t('duration.minute', { count: 1 }), '1 分間');
  t.is(translator('fr').t('duration.hour', { count: 24 }), '24 heures');
});

test('the html translation escapes values but keeps the catalog markup', (t) => {
  t.is(translator('en').html('layout.continueTo', { client: '<script>x</script>' }), 'to continue to <strong>&lt;script&gt;x&lt;/script&gt;</strong>');
  t.is(translator('en').t('layout.cancelAndReturn', { client: 'A & B' }), 'Cancel and return to A & B', 'plain text is escaped where it lands (EJS)');
});

/** Where the words people see on pages are written: the page code, and the domain rules it shows refusals of. */
const PAGE_SOURCES = [
  'src/interaction', 'src/account', 'src/http',
  'src/domain/accounts.ts', 'src/domain/email.ts', 'src/domain/password-policy.ts', 'src/domain/second-factors.ts',
  'src/domain/mfa', 'src/domain/identities.ts', 'src/domain/federation.ts',
  'src/oidc/features/device-flow.ts', 'src/console',
];

function sourcesUnder(entry: string): string[] {
  if (entry.endsWith('.ts')) return [entry];
  return readdirSync(entry, { withFileTypes: true }).flatMap((item) => sourcesUnder(`${entry}/${item.name}`)).filter((file) => file.endsWith('.ts'));
}

test('every fixed message the pages can show is in the catalogs, so it is shown in the page language', (t) => {
  const literal = String.raw`'((?:[^'\\]|\\.)*)'`;
  const patterns = [
    new RegExp(String.raw`new AppError\('ERR_(?!CONFIG|SECRET|WORKERS|STORE|CERTIFICATE|CLIENT|RESOURCE|UPSTREAM_INVALID)[A-Z_]+',\s*${literal}`, 'g'),
    new RegExp(String.raw`\b(?:error|notice|message): ${literal}`, 'g'),
    new RegExp(String.raw`\b(?:refused|upstreamFailed)\(${literal}`, 'g'),
    new RegExp(String.raw`^const [A-Z_]+ = ${literal};`, 'gm'),
  ];
  // The console's views show these through `message()` too: notices after a redirect (a table, one a
  // line), titles and descriptions, its own refusals, either side of a choice.
  const consolePatterns = [
    new RegExp(String.raw`^\s+'?[\w-]+'?: ${literal},?$`, 'gm'),
    new RegExp(String.raw`\b(?:title|description|banner): ${literal}`, 'g'),
    new RegExp(String.raw`new AdminCallError\(\d+, '\w+', ${literal}`, 'g'),
    new RegExp(String.raw`\]: ${literal}`, 'g'),
    new RegExp(String.raw`(?:\? | : )${literal}`, 'g'),
  ];
  const german = translator('de');
  const untranslated = new Set<string>();
  for (const file of PAGE_SOURCES.flatMap(sourcesUnder)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of file.startsWith('src/console/') ? [...patterns, ...consolePatterns] : patterns) {
      for (const match of text.matchAll(pattern)) {
        const message = (match[1] ?? '').replace(/\\'/g, "'");
        // Words only: identifiers and codes (`access_denied`, 'sign-in') are not messages.
        if (!/^[A-Z].* /.test(message)) continue;
        if (localizeMessage(german, message) === message) untranslated.add(`${file}: ${message}`);
      }
    }
  }
  t.deepEqual([...untranslated], []);
});

/** Text in a template that is not a word of any language: code and addresses shown as they are. */
const NOT_WORDS = new Set(['/.well-known/openid-configuration', 'client_id']);

/**
 * The words a template writes itself, outside `<% %>`: text between tags, and the attributes a person
 * reads or hears (alt, title, placeholder, aria-label). Whatever is left once the EJS is taken out.
 */
function templateWords(source: string): string[] {
  const markup = source.replace(/<%[\s\S]*?%>/g, ' ');
  const attributes = [...markup.matchAll(/\s(?:alt|title|placeholder|aria-label|aria-description)="([^"]*)"/g)].map((match) => match[1] ?? '');
  const text = markup.replace(/<(script|style)\b[\s\S]*?<\/\1>/g, ' ').replace(/<[^>]*>/g, '\n').replace(/&[#\w]+;/g, ' ').split('\n');
  return [...attributes, ...text].map((part) => part.trim()).filter((part) => /\p{L}{2}/u.test(part) && !NOT_WORDS.has(part));
}

function templatesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) => (item.isDirectory() ? templatesUnder(`${dir}/${item.name}`) : item.name.endsWith('.ejs') ? [`${dir}/${item.name}`] : []));
}

test('no page template writes words of its own: every text and label comes from the catalogs', (t) => {
  const found = templatesUnder('views').flatMap((file) => templateWords(readFileSync(file, 'utf8')).map((words) => `${file}: ${words}`));
  t.deepEqual(found, []);
});

test('the template check finds text between tags and in labelling attributes, not in EJS or markup', (t) => {
  t.deepEqual(templateWords('<h1><%= t("x") %></h1>\n<p class="lead">Plain words</p><img alt="A picture" src="/a.png"><input aria-label="<%= t(\'y\') %>">'), ['A picture', 'Plain words']);
});
