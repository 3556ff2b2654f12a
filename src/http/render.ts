import type { Context } from 'koa';

/**
 * Renders a page with the locals every template relies on. Pages are server-rendered and work
 * without JavaScript; the layout partials read `title`, and forms read `csrfToken`.
 */
export async function renderPage(ctx: Context, view: string, locals: Record<string, unknown> = {}): Promise<void> {
  ctx.type = 'html';
  await ctx.render(view, { csrfToken: ctx.state.csrfToken, ...locals });
}
