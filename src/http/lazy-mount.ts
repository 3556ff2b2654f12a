/**
 * A part of the app served under one path prefix whose code is loaded on the first request under
 * that prefix: the admin console, the admin API and the registration API. Their modules (the admin
 * API's zod schemas alone are about 2 MB of heap) then stay out of a process that never serves them,
 * which is most processes most of the time. The first request waits for the import (tens of
 * milliseconds from the compile cache); a failed import is retried by the next request.
 */
import type { Context, Middleware, Next } from 'koa';

export function lazyMount(prefix: string, load: () => Promise<Middleware>): Middleware {
  let loading: Promise<Middleware> | undefined;
  return async function lazilyMounted(ctx: Context, next: Next) {
    if (ctx.path !== prefix && !ctx.path.startsWith(`${prefix}/`)) return next();
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return (await loading)(ctx, next);
  };
}
