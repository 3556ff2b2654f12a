import type { Context } from 'koa';

/** A form field: they arrive as strings, arrays (repeated fields) or not at all; only a single string counts. */
export function formField(ctx: Context, name: string): string {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}
