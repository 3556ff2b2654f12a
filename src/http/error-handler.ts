/**
 * The one error middleware for Tessera's own routes. An error meant for the client (AppError with
 * expose, or an http-errors 4xx from a body parser) shows its message; anything else becomes a
 * plain 500 with no details, and is logged with the request id. HTML or JSON, by Accept.
 * oidc-provider's endpoints keep their own OAuth error responses.
 */
import type { Context, Middleware, Next } from 'koa';

import type { Logger } from '../log.ts';
import { STORE_RETRY_AFTER_SECONDS } from '../store/outage.ts';
import { renderPage } from './render.ts';

interface HttpishError {
  /** oidc-provider errors carry the OAuth error code and a description meant for the client. */
  error?: string;
  error_description?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
  code?: string;
  /** Rate limits (http/rate-limit.ts): sent as Retry-After with the 429. */
  retryAfterSeconds?: number;
}

export interface ErrorHandlerOptions {
  /** Requests whose errors are always JSON (protocol endpoints: no page is ever rendered there). */
  answersJson?(ctx: Context): boolean;
}

export function errorHandler(logger: Logger, { answersJson = () => false }: ErrorHandlerOptions = {}): Middleware {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        await respond(ctx, 404, 'not_found', 'There is nothing at this address.', answersJson(ctx) ? 'only json' : 'html');
      }
    } catch (caught) {
      const error = (caught ?? {}) as HttpishError;
      const status = error.status ?? error.statusCode ?? 500;
      // The store is unreachable (ERR_STORE_UNAVAILABLE, or oidc-provider's temporarily_unavailable
      // from the adapter): not a bug, and over by itself; the client is told when to come back.
      if (status === 503) {
        logger.warn({ err: caught, requestId: ctx.state.requestId }, 'store unavailable');
        ctx.set('Retry-After', String(STORE_RETRY_AFTER_SECONDS));
        // JSON unless HTML is asked for: most callers here without an Accept header are API clients
        // (the token endpoint's rate limit reads the store before oidc-provider has the request).
        await respond(ctx, 503, 'temporarily_unavailable', 'The service is briefly unavailable. Please try again in a few seconds.', answersJson(ctx) ? 'only json' : 'json');
        return;
      }
      const exposed = status < 500 && error.expose !== false;
      if (!exposed) logger.error({ err: caught, requestId: ctx.state.requestId }, 'unhandled error');
      if (exposed && typeof error.retryAfterSeconds === 'number') ctx.set('Retry-After', String(error.retryAfterSeconds));
      await respond(
        ctx,
        exposed ? status : 500,
        exposed ? (error.error ?? error.code ?? 'invalid_request').toLowerCase().replace(/^err_/, '') : 'server_error',
        exposed
          ? (error.error_description ?? error.message ?? 'The request was not valid.')
          : 'Something went wrong on our side. Please try again.',
        answersJson(ctx) ? 'only json' : 'html',
      );
    }
  };
}

async function respond(ctx: Context, status: number, error: string, description: string, prefer: 'html' | 'json' | 'only json' = 'html'): Promise<void> {
  ctx.status = status;
  const format = prefer === 'only json' ? 'json' : prefer === 'html' ? ctx.accepts('html', 'json') : ctx.accepts('json', 'html');
  if (format === 'json') {
    ctx.body = { error, error_description: description };
    return;
  }
  try {
    await renderPage(ctx, 'error', { title: 'Something went wrong', error, description });
  } catch {
    ctx.type = 'text';
    ctx.body = description;
  }
}
