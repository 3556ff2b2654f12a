/**
 * The one error middleware for Tessera's own routes. What a caught error answers (status, headers,
 * `error` and its words) comes from the one table in errors.ts (errorAnswer), as for the APIs; this
 * only chooses how to show it: the error page, or JSON by Accept. An error meant for the client shows
 * its message; anything else is a plain 500 with no details, logged with the request id.
 * oidc-provider's endpoints keep their own OAuth error responses.
 */
import type { Context, Middleware, Next } from 'koa';

import { AppError, errorAnswer } from '../errors.ts';
import type { Logger } from '../log.ts';
import { errorSituation } from './error-page.ts';
import { renderPage } from './render.ts';

export interface ErrorHandlerOptions {
  /** Requests whose errors are always JSON (protocol endpoints: no page is ever rendered there). */
  answersJson?(ctx: Context): boolean;
}

export function errorHandler(logger: Logger, { answersJson = () => false }: ErrorHandlerOptions = {}): Middleware {
  return async function handleErrors(ctx: Context, next: Next) {
    let caught: unknown;
    try {
      await next();
      if (ctx.status !== 404 || ctx.body !== undefined) return;
      caught = new AppError('ERR_NOT_FOUND', 'There is nothing at this address.');
    } catch (error) {
      caught = error;
    }
    const answer = errorAnswer(caught);
    if (answer.log === 'warn') logger.warn({ err: caught, requestId: ctx.state.requestId }, 'store unavailable');
    if (answer.log === 'error') logger.error({ err: caught, requestId: ctx.state.requestId }, 'unhandled error');
    ctx.status = answer.status;
    for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
    // A 503 is JSON unless HTML is asked for: most callers here without an Accept header are API
    // clients (the token endpoint's rate limit reads the store before oidc-provider has the request).
    const format = answersJson(ctx) ? 'json' : answer.status === 503 ? ctx.accepts('json', 'html') : ctx.accepts('html', 'json');
    if (format === 'json') {
      ctx.body = { error: answer.body.error, error_description: answer.body.error_description };
      return;
    }
    try {
      await renderPage(ctx, 'error', { error: answer.body.error, description: answer.body.error_description, situation: errorSituation(answer.body.error) });
    } catch {
      ctx.type = 'text';
      ctx.body = answer.body.error_description;
    }
  };
}
