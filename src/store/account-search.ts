/**
 * What both backends share to answer accounts.search(): which order a search pages in, the
 * position a cursor carries, and the upper bound that turns an email prefix into an index range.
 */
import { AppError } from '../errors.ts';
import type { AccountSearch } from './port.ts';

/** Where a page ended: the last email (email order) or the last creation time and sub (oldest first). */
export type AccountPosition = { order: 'email'; email: string } | { order: 'created'; createdAt: number; sub: string };

/** A prefix search pages through the email index; every other search oldest first, as list() does. */
export function searchOrder(search: AccountSearch): AccountPosition['order'] {
  return search.emailPrefix ? 'email' : 'created';
}

export function encodeAccountCursor(position: AccountPosition): string {
  const fields = position.order === 'email' ? ['e', position.email] : ['c', position.createdAt, position.sub];
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

/** The position in `search`'s order; ERR_INVALID_INPUT for a cursor that is not one (or belongs to another order). */
export function decodeAccountCursor(search: AccountSearch): AccountPosition | undefined {
  if (search.cursor === undefined) return undefined;
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(String(search.cursor), 'base64url').toString('utf8'));
  } catch {
    fields = undefined;
  }
  const order = searchOrder(search);
  if (Array.isArray(fields)) {
    if (order === 'email' && fields.length === 2 && fields[0] === 'e' && typeof fields[1] === 'string') return { order, email: fields[1] };
    if (order === 'created' && fields.length === 3 && fields[0] === 'c' && Number.isSafeInteger(fields[1]) && typeof fields[2] === 'string') {
      return { order, createdAt: fields[1] as number, sub: fields[2] };
    }
  }
  throw new AppError('ERR_INVALID_INPUT', 'The cursor is not the next cursor of this search.');
}

/**
 * The least string greater than every string starting with `prefix` (its last code point plus
 * one), so `email >= prefix AND email < bound` is an index range on both backends. Undefined when
 * there is no such string (a prefix ending in U+10FFFF): the range then has no upper end.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const codePoints = [...prefix];
  const last = codePoints.pop()!.codePointAt(0)!;
  if (last === 0x10ffff) return undefined;
  // The surrogate range holds no code point of its own: the next one after U+D7FF is U+E000.
  const next = last === 0xd7ff ? 0xe000 : last + 1;
  return codePoints.join('') + String.fromCodePoint(next);
}
