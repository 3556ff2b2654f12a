/**
 * The admin API under /admin/api: JSON in and out, bearer-authenticated (authentication.ts), so no
 * cookies, no CSRF token and no CORS headers. Every request goes through the same steps:
 *
 *   authenticate -> route (from the table in routes.ts) -> read the body (JSON only, 64 kB) ->
 *   refuse operator-shaped input -> validate path, query and body (schemas.ts) -> answer ->
 *   validate the answer -> record the write (admin.action)
 *
 * and every refusal is `{error, error_description, fields?}` (errors.ts). The OpenAPI document at
 * /admin/api/openapi.json is public: it describes the API, it holds nothing about this installation
 * beyond its URLs.
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import { z } from 'zod';

import type { EventDetail } from '../domain/events.ts';
import { AdminAuthentication, type AdminCaller } from './authentication.ts';
import type { AdminApiDependencies } from './dependencies.ts';
import { AdminApiError, answerWithError, invalidRequest } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { ADMIN_API_PATH } from './resource.ts';
import { koaPath, type Route } from './route-table.ts';
import { ADMIN_ROUTES } from './routes.ts';

export const OPENAPI_PATH = `${ADMIN_API_PATH}/openapi.json`;
const BODY_LIMIT = '64kb';
/** Deeper than any body of this API; bounds the walk below. */
const MAX_DEPTH = 16;
/** Keys that are MongoDB operators (`$gt`, `$where`) or reach an object's prototype. */
const FORBIDDEN_KEY = /^\$|^__proto__$|^constructor$|^prototype$|\u0000/;

interface AdminState {
  caller?: AdminCaller;
  route?: Route;
  notes: Record<string, string | number | boolean>;
}

function adminState(ctx: Context): AdminState {
  return ctx.state.admin as AdminState;
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

/** Field (dotted path) -> what is wrong, first message per field. */
function fieldsOf(issues: readonly z.core.$ZodIssue[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) {
    const base = issue.path.map(String).join('.');
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

function readBody(route: Route): Middleware {
  const parse = bodyParser({ enableTypes: ['json'], jsonLimit: BODY_LIMIT, encoding: 'utf-8', jsonStrict: true });
  return async function readJsonBody(ctx: Context, next: Next) {
    if (!route.body) {
      if (hasBody(ctx)) throw invalidRequest('This endpoint takes no body');
      return next();
    }
    if (!hasBody(ctx)) throw invalidRequest('This endpoint needs a JSON body');
    // Refused before a byte is read: only JSON is parsed, everything else is 415.
    if (!ctx.is('application/json')) throw new AdminApiError(415, 'unsupported_media_type', 'Send the body as application/json (UTF-8)');
    await parse(ctx, next);
  };
}

/** Routes without query parameters take none: anything in the query string is refused. */
const NO_QUERY = z.strictObject({});

function answer(route: Route, deps: AdminApiDependencies): Middleware {
  return async function answerAdminRequest(ctx: Context) {
    const state = adminState(ctx);
    state.route = route;
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
    const result = await route.handle({
      params,
      query,
      body,
      caller: state.caller!,
      deps,
      ctx,
      note: (details) => Object.assign(state.notes, details),
    });
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
function noRoute(router: Router): Middleware {
  return async function unknownEndpoint(ctx: Context) {
    const methods = [...new Set(router.match(ctx.path, ctx.method).path.flatMap((layer) => layer.methods))];
    if (methods.length) {
      throw new AdminApiError(405, 'method_not_allowed', `Use ${methods.join(', ')}`, { headers: { Allow: methods.join(', ') } });
    }
    throw new AdminApiError(404, 'unknown_endpoint', 'There is no admin API endpoint at this path; see /admin/api/openapi.json');
  };
}

export function adminApi(deps: AdminApiDependencies): Middleware {
  const { services, config, logger } = deps;
  const authentication = new AdminAuthentication({
    issuer: config.issuer,
    keys: deps.keys,
    revisions: deps.revisions,
    accounts: services.accounts,
    async clientMetadata(clientId) {
      return services.clients.staticClient(clientId) ?? services.clients.findMetadata(clientId);
    },
    rateLimits: services.rateLimits,
  });

  const router = new Router({ prefix: ADMIN_API_PATH });
  for (const route of ADMIN_ROUTES) {
    router.register(koaPath(route.path), [route.method.toUpperCase()], [readBody(route), answer(route, deps)], { name: route.operationId });
  }
  const dispatch = compose([router.routes() as Middleware, noRoute(router)]);
  let document: object | undefined;

  function recordWrite(ctx: Context, state: AdminState): void {
    const { caller, route } = state;
    if (!caller || !route || route.method === 'get' || !deps.events) return;
    const params = (ctx.params ?? {}) as Record<string, string | undefined>;
    const sub = params.sub ?? (typeof state.notes.created_sub === 'string' ? state.notes.created_sub : undefined);
    const clientId = params.client_id ?? (typeof state.notes.created_client_id === 'string' ? state.notes.created_client_id : undefined);
    const details: Record<string, EventDetail> = {
      action: route.operationId,
      method: ctx.method,
      path: ctx.path,
      status: ctx.status,
      actor_kind: caller.kind,
      actor_client_id: caller.clientId,
      ...(caller.sub && { actor_sub: caller.sub }),
      ...(params.role && { role: params.role }),
      ...(params.audience && { audience: params.audience }),
      ...state.notes,
    };
    deps.events.emit({
      type: 'admin.action',
      ...(sub && { sub }),
      // The client acted on, or else the client acting.
      clientId: clientId ?? caller.clientId,
      requestId: ctx.state.requestId,
      ip: services.rateLimits.address(ctx),
      details,
    });
  }

  return async function adminApiRequest(ctx: Context, next: Next) {
    if (ctx.path !== ADMIN_API_PATH && !ctx.path.startsWith(`${ADMIN_API_PATH}/`)) return next();
    ctx.set('Cache-Control', 'no-store');
    const state: AdminState = { notes: {} };
    ctx.state.admin = state;
    try {
      if (ctx.path === OPENAPI_PATH) {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new AdminApiError(405, 'method_not_allowed', 'Use GET', { headers: { Allow: 'GET, HEAD' } });
        document ??= openApiDocument(ADMIN_ROUTES, config.issuer);
        ctx.body = document;
        return;
      }
      state.caller = await authentication.authenticate(ctx);
      await dispatch(ctx, async () => undefined);
      if (state.route && state.route.method !== 'get') {
        // The write is done; this instance seeing it at once is a nicety, the poll catches up otherwise.
        await deps.refresh().catch((error: unknown) => logger.error({ err: error }, 'could not refresh after an admin write'));
      }
    } catch (caught) {
      answerWithError(ctx, caught, logger, BODY_LIMIT);
    }
    recordWrite(ctx, state);
  };
}
