/**
 * What the admin API answers when it refuses: always JSON `{error, error_description, fields?}` with
 * a 4xx status (503 while the store is away), never a stack trace. Domain AppErrors are translated
 * here, in one place; anything unexpected becomes a plain 500 and goes to the log.
 */
import type { Context } from 'koa';

import { isAppError } from '../errors.ts';
import { RateLimitedError } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';
import { STORE_RETRY_AFTER_SECONDS } from '../store/outage.ts';

export type AdminErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'not_found'
  /** No endpoint at this path (as opposed to no such user, client, ...). */
  | 'unknown_endpoint'
  | 'method_not_allowed'
  | 'conflict'
  | 'request_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'temporarily_unavailable'
  | 'server_error';

export class AdminApiError extends Error {
  readonly status: number;
  readonly code: AdminErrorCode;
  readonly fields: Record<string, string> | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, code: AdminErrorCode, description: string, options: { fields?: Record<string, string> | undefined; headers?: Record<string, string> } = {}) {
    super(description);
    this.name = 'AdminApiError';
    this.status = status;
    this.code = code;
    this.fields = options.fields;
    this.headers = options.headers ?? {};
  }
}

export function invalidRequest(description: string, fields?: Record<string, string>): AdminApiError {
  return new AdminApiError(400, 'invalid_request', description, { fields });
}

export function notFound(description: string): AdminApiError {
  return new AdminApiError(404, 'not_found', description);
}

export function conflict(description: string, fields?: Record<string, string>): AdminApiError {
  return new AdminApiError(409, 'conflict', description, { fields });
}

/** Status and code for a domain refusal; the domain's message is meant for the operator and kept. */
function fromAppError(error: unknown): AdminApiError | undefined {
  if (error instanceof RateLimitedError) {
    return new AdminApiError(429, 'rate_limited', error.message, { headers: { 'Retry-After': String(error.retryAfterSeconds) } });
  }
  if (!isAppError(error)) return undefined;
  switch (error.code) {
    case 'ERR_STORE_UNAVAILABLE':
      return new AdminApiError(503, 'temporarily_unavailable', 'The store is not reachable right now. Try again shortly.', { headers: { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) } });
    case 'ERR_NOT_FOUND':
      return notFound(error.message);
    case 'ERR_EMAIL_TAKEN':
      return conflict('An account with this email already exists', { email: 'Already registered' });
    default:
      if (!error.expose || error.status >= 500) return undefined;
      return error.status === 409 ? conflict(error.message, error.fields && { ...error.fields }) : invalidRequest(error.message, error.fields && { ...error.fields });
  }
}

/** The body parser's refusals, by status. */
function fromHttpError(error: { status?: unknown; type?: unknown; expose?: unknown }, bodyLimit: string): AdminApiError | undefined {
  if (typeof error.status !== 'number' || error.status < 400 || error.status >= 500 || error.expose === false) return undefined;
  if (error.status === 413) return new AdminApiError(413, 'request_too_large', `The body is limited to ${bodyLimit}`);
  if (error.status === 415) return new AdminApiError(415, 'unsupported_media_type', 'Send the body as application/json (UTF-8)');
  return invalidRequest(error.type === 'entity.parse.failed' ? 'The body is not valid JSON' : 'The request body could not be read');
}

export function answerWithError(ctx: Context, caught: unknown, logger: Logger, bodyLimit: string): void {
  let answer = caught instanceof AdminApiError ? caught : fromAppError(caught) ?? fromHttpError((caught ?? {}) as Record<string, unknown>, bodyLimit);
  if (!answer) {
    logger.error({ err: caught, requestId: ctx.state.requestId }, 'admin API request failed');
    answer = new AdminApiError(500, 'server_error', 'Something went wrong on our side. Please try again.');
  }
  ctx.status = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
  ctx.body = { error: answer.code, error_description: answer.message, ...(answer.fields && { fields: answer.fields }) };
}
