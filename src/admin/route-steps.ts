/**
 * The steps every route of a route table (route-table.ts) goes through, whichever API it belongs to:
 *
 *   read the body (JSON only, up to the API's limit) -> refuse operator-shaped input ->
 *   validate path, query and body -> answer -> validate the answer
 *
 * and the one way a refusal is answered: `{error, error_description, fields?}` with the status and
 * headers of errors.ts's table (errorAnswer), never a stack trace.
 */
import { bodyParser } from '@koa/bodyparser';
import type Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import { z } from 'zod';

import { AppError, errorAnswer } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ApiRequest, Route } from './route-table.ts';

/** Deeper than any body of these APIs; bounds the walk below. */
const MAX_DEPTH = 16;
/** Keys that are MongoDB operators (`$gt`, `$where`) or reach an object's prototype. */
const FORBIDDEN_KEY = /^\$|^__proto__$|^constructor$|^prototype$|\u0000/;

export function invalidRequest(description: string, fields?: Record<string, string>): AppError {
  return new AppError('ERR_INVALID_INPUT', description, { fields });
}

/** Where in `value` a key looks like a query operator, if anywhere. */
function operatorKey(value: unknown, path: string, depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return path || '_';
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = operatorKey(item, `${path}${path ? '.' : ''}${index}`, depth + 1);
      if (found) return found;
    }
  } else if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      const where = `${path}${path ? '.' : ''}${key}`;
      if (FORBIDDEN_KEY.test(key)) return where;
      const found = operatorKey((value as Record<string, unknown>)[key], where, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

function refuseOperators(value: unknown, part: 'query' | 'body'): void {
  const where = operatorKey(value, '');
  if (where !== undefined) {
    throw invalidRequest(`Field names starting with $, and __proto__, constructor or prototype, are not accepted (${part})`, { [where]: 'Not an accepted field name' });
  }
}

/**
 * Field (dotted path) -> what is wrong, first message per field. `rename` maps a schema's names to
 * the wire's where they differ (a domain schema's givenName is given_name on the wire).
 */
export function fieldsOf(issues: readonly z.core.$ZodIssue[], rename: Readonly<Record<string, string>> = {}): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) {
    const base = issue.path.map((part) => rename[String(part)] ?? String(part)).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) fields[base ? `${base}.${key}` : key] ??= 'Unknown field';
      continue;
    }
    fields[base || '_'] ??= issue.message;
  }
  return fields;
}

function validated<S extends z.ZodType>(schema: S, value: unknown, part: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalidRequest(`Some ${part} fields are missing or not right`, fieldsOf(result.error.issues));
  return result.data;
}

function hasBody(ctx: Context): boolean {
  return Number(ctx.get('Content-Length') || 0) > 0 || ctx.get('Transfer-Encoding') !== '';
}

export function readBody<D, C>(route: Route<D, C>, bodyLimit: string): Middleware {
  const parse = bodyParser({ enableTypes: ['json'], jsonLimit: bodyLimit, encoding: 'utf-8', jsonStrict: true });
  return async function readJsonBody(ctx: Context, next: Next) {
    if (!route.body) {
      if (hasBody(ctx)) throw invalidRequest('This endpoint takes no body');
      return next();
    }
    if (!hasBody(ctx)) throw invalidRequest('This endpoint needs a JSON body');
    // Refused before a byte is read: only JSON is parsed, everything else is 415.
    if (!ctx.is('application/json')) throw new AppError('ERR_UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json (UTF-8)');
    await parse(ctx, next);
  };
}

/** Routes without query parameters take none: anything in the query string is refused. */
const NO_QUERY = z.strictObject({});

type RouteContext<D, C> = Pick<ApiRequest<unknown, unknown, unknown, D, C>, 'caller' | 'deps' | 'note'>;

/** Validates the request's parts, calls the route, and holds its answer to the route's schema. */
export function answer<D, C>(route: Route<D, C>, context: (ctx: Context) => RouteContext<D, C>): Middleware {
  return async function answerRequest(ctx: Context) {
    const params = route.params ? validated(route.params, ctx.params, 'path') : {};
    refuseOperators(ctx.query, 'query');
    const query = validated(route.query ?? NO_QUERY, { ...ctx.query }, 'query');
    let body: unknown;
    if (route.body) {
      const raw: unknown = ctx.request.body;
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalidRequest('The body must be a JSON object');
      refuseOperators(raw, 'body');
      body = validated(route.body, raw, 'body');
    }
    const result = await route.handle({ params, query, body, ctx, ...context(ctx) });
    if (!route.response) {
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    // The answer is held to its schema too: what the schema does not name never leaves.
    const checked = route.response.safeParse(result);
    if (!checked.success) throw new Error(`${route.operationId} answered outside its schema: ${JSON.stringify(fieldsOf(checked.error.issues))}`);
    ctx.status = route.status ?? 200;
    ctx.body = checked.data;
  };
}

/** Nothing routed: 405 with Allow when the path exists with other methods, else 404. */
export function noRoute(router: Router, unknownEndpoint: string): Middleware {
  return async function unknownEndpointOrMethod(ctx: Context) {
    const methods = [...new Set(router.match(ctx.path, ctx.method).path.flatMap((layer) => layer.methods))];
    if (methods.length) throw new AppError('ERR_METHOD_NOT_ALLOWED', `Use ${methods.join(', ')}`, { headers: { Allow: methods.join(', ') } });
    throw new AppError('ERR_UNKNOWN_ENDPOINT', unknownEndpoint);
  };
}

/** Any refusal or failure, in JSON; a failure on our side goes to the log with the request id, not to the caller. */
export function answerWithError(ctx: Context, caught: unknown, logger: Logger, { bodyLimit, what }: { bodyLimit: string; what: string }): void {
  const refusal = errorAnswer(caught, { bodyLimit });
  if (refusal.log === 'warn') logger.warn({ err: caught, requestId: ctx.state.requestId }, 'store unavailable');
  if (refusal.log === 'error') logger.error({ err: caught, requestId: ctx.state.requestId }, `${what} request failed`);
  ctx.status = refusal.status;
  ctx.set(refusal.headers);
  ctx.body = refusal.body;
}
