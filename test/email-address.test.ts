/** The one rule for email addresses (src/domain/email.ts) is pure logic: examples and properties. */
import test from 'ava';
import fc from 'fast-check';

import { emailLookupKey, normaliseEmail } from '../src/domain/email.ts';

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const address = fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,15}$/), fc.array(label, { minLength: 2, maxLength: 3 }))
  .map(([local, labels]) => `${local}@${labels.join('.')}`);
/** Control and format characters (Cc, Cf): NUL, zero-width, bidi, soft hyphen, BOM and the rest. */
const hidden = fc.constantFrom('\u0000', '\u0007', '\u001b', '\u007f', '\u0085', '\u00ad', '\u200b', '\u200c', '\u200d', '\u200e', '\u202a', '\u202e', '\u2066', '\u2069', '\ufeff', '\u{e0001}');

function canonical(input: string): string | undefined {
  const result = normaliseEmail(input);
  return result.ok ? result.email : undefined;
}

test('the same mailbox in other spellings has one canonical form', (t) => {
  t.is(canonical('  Ada.Lovelace+news@Example.COM  '), 'ada.lovelace+news@example.com');
  t.is(canonical('ada@example.com.'), 'ada@example.com', 'the DNS root dot');
  t.is(canonical('ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ'), 'ada@example.com', 'fullwidth forms fold under NFKC');
  t.is(canonical('ada@xn--bcher-kva.example'), 'ada@bücher.example', 'an A-label domain is the same as its Unicode form');
  t.is(canonical('ada@BÜCHER.example'), 'ada@bücher.example');
  t.is(canonical('cafe\u0301@example.com'), 'café@example.com', 'composed and decomposed accents');
});

test('addresses with hidden characters, bad shape or bad domains are refused with a code', (t) => {
  for (const [input, code] of [
    ['', 'ERR_EMAIL_EMPTY'], ['   ', 'ERR_EMAIL_EMPTY'],
    ['ada\u200b@example.com', 'ERR_EMAIL_HIDDEN_CHARACTER'], ['ada@example.com\u0000', 'ERR_EMAIL_HIDDEN_CHARACTER'],
    ['\u202eada@example.com', 'ERR_EMAIL_HIDDEN_CHARACTER'], ['a\u00adda@example.com', 'ERR_EMAIL_HIDDEN_CHARACTER'],
    ['ada lovelace@example.com', 'ERR_EMAIL_FORMAT'], ['ada', 'ERR_EMAIL_FORMAT'], ['@example.com', 'ERR_EMAIL_FORMAT'],
    ['a@b@example.com', 'ERR_EMAIL_FORMAT'], ['ada@', 'ERR_EMAIL_FORMAT'],
    ['ada@localhost', 'ERR_EMAIL_DOMAIN'], ['ada@example..com', 'ERR_EMAIL_DOMAIN'], ['ada@example.com..', 'ERR_EMAIL_DOMAIN'], ['ada@.example.com', 'ERR_EMAIL_DOMAIN'],
    ['ada@exa_mple.com', 'ERR_EMAIL_DOMAIN'],
    ['"ada"@example.com', 'ERR_EMAIL_FORMAT'], ['ada(note)@example.com', 'ERR_EMAIL_FORMAT'], ['"a\\da"@example.com', 'ERR_EMAIL_FORMAT'],
    ['<ada>@example.com', 'ERR_EMAIL_FORMAT'], ['a,da@example.com', 'ERR_EMAIL_FORMAT'], ['ada;@example.com', 'ERR_EMAIL_FORMAT'], ['[ada]@example.com', 'ERR_EMAIL_FORMAT'],
    [`${'a'.repeat(65)}@example.com`, 'ERR_EMAIL_TOO_LONG'], [`ada@${Array(5).fill('a'.repeat(60)).join('.')}.com`, 'ERR_EMAIL_TOO_LONG'], [`ada@${'a'.repeat(64)}.com`, 'ERR_EMAIL_DOMAIN'],
  ] as const) {
    const result = normaliseEmail(input);
    t.like(result, { ok: false, code }, JSON.stringify(input));
  }
});

test('the canonical form is a fixed point, and case, a trailing dot and fullwidth forms never make a second address', (t) => {
  fc.assert(fc.property(address, fc.boolean(), fc.boolean(), (email, upper, dot) => {
    const expected = canonical(email);
    if (expected === undefined) return true;
    const fullwidth = [...email].map((char) => String.fromCodePoint(char.codePointAt(0)! + 0xfee0)).join('');
    const variant = `${upper ? email.toUpperCase() : email}${dot ? '.' : ''}`;
    return canonical(expected) === expected && canonical(variant) === expected && canonical(fullwidth) === expected;
  }));
  t.pass();
});

test('a control or format character anywhere inside an address is refused, never stripped', (t) => {
  fc.assert(fc.property(address, hidden, fc.nat(), (email, char, at) => {
    const position = 1 + (at % (email.length - 1));
    const result = normaliseEmail(email.slice(0, position) + char + email.slice(position));
    return !result.ok && result.code === 'ERR_EMAIL_HIDDEN_CHARACTER';
  }));
  t.pass();
});

test('any string at all gets an answer, never an exception, and the lookup key of a refused one is never a canonical form of another', (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (input) => {
    const result = normaliseEmail(input);
    if (result.ok) return emailLookupKey(input) === result.email;
    return canonical(emailLookupKey(input)) !== emailLookupKey(input);
  }));
  t.pass();
});
