/**
 * `ctx.render(view, locals)` for pages and for oidc-provider's own (error, logout): koa-views with
 * EJS, the stack's choice. The middleware only attaches a render function to the request, so it
 * costs next to nothing on protocol endpoints; templates are compiled once in production
 * (`cache`), and on every render otherwise, so template edits show at once in development.
 */
import type { Middleware } from 'koa';
import views from 'koa-views';

export function viewsMiddleware({ root, cache }: { root: string; cache: boolean }): Middleware {
  return views(root, { extension: 'ejs', options: { cache } }) as unknown as Middleware;
}
