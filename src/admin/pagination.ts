/**
 * Cursors for the admin API's lists held in memory. A cursor is opaque to callers; inside it is the
 * position where the next page starts in the list's stable order (clients and resources by creation:
 * a deleted one only shifts later pages by one, which a listing of configuration can live with).
 * Users page through the store's own cursors instead (accounts.search), which carry a position in
 * an index rather than an offset, so a million accounts page as cheaply as ten.
 */
import { invalidRequest } from './route-steps.ts';

const PREFIX = 'p1.';

export function encodeCursor(offset: number): string {
  return `${PREFIX}${offset.toString(36)}`;
}

/** 0 for no cursor; 400 for one that is not ours. */
export function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const match = /^p1\.([0-9a-z]{1,8})$/.exec(cursor);
  const offset = match ? Number.parseInt(match[1]!, 36) : Number.NaN;
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalidRequest('cursor is not the next_cursor of an earlier page', { cursor: 'Not a cursor from this API' });
  return offset;
}

/** One page of a list held in memory. */
export function pageOf<T, V>(all: readonly T[], query: { limit: number; cursor?: string | undefined }, view: (item: T) => V): { items: V[]; next_cursor?: string } {
  const offset = decodeCursor(query.cursor);
  const items = all.slice(offset, offset + query.limit).map(view);
  return { items, ...(offset + query.limit < all.length && { next_cursor: encodeCursor(offset + query.limit) }) };
}
