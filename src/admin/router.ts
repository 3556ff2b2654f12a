/**
 * The admin API under /admin/api: JSON in and out, bearer-authenticated (authentication.ts), so no
 * cookies, no CSRF token and no CORS headers. Every request goes through the same steps:
 *
 *   authenticate -> route (from the table in routes.ts) -> read the body (JSON only, 64 kB) ->
 *   refuse operator-shaped input -> validate path, query and body (schemas.ts) -> answer ->
 *   validate the answer -> record the write (admin.action)
 *
 * (route-steps.ts, shared with the registration API) and every refusal is `{error, error_description,
 * fields?}` with the status of the one table in ../errors.ts. The OpenAPI document at
 * /admin/api/openapi.json is public: it describes the API, it holds nothing about this installation
 * beyond its URLs.
 */
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';

import type { EventDetail } from '../domain/events.ts';
import { AppError } from '../errors.ts';
import { AdminAuthentication, type AdminCaller } from './authentication.ts';
import type { AdminApiDependencies } from './dependencies.ts';
import { openApiDocument } from './openapi.ts';
import { ADMIN_API_PATH } from './resource.ts';
import { answer, answerWithError, noRoute, readBody } from './route-steps.ts';
import { koaPath, type Route } from './route-table.ts';
import { ADMIN_ROUTES } from './routes.ts';

export const OPENAPI_PATH = `${ADMIN_API_PATH}/openapi.json`;
const BODY_LIMIT = '64kb';

interface AdminState {
  caller?: AdminCaller;
  route?: Route;
  notes: Record<string, string | number | boolean>;
}

function adminState(ctx: Context): AdminState {
  return ctx.state.admin as AdminState;
}

function answerAdmin(route: Route, deps: AdminApiDependencies): Middleware {
  const answerRoute = answer(route, (ctx) => {
    const state = adminState(ctx);
    return { caller: state.caller!, deps, note: (details) => Object.assign(state.notes, details) };
  });
  return function answerAdminRequest(ctx: Context, next: Next) {
    adminState(ctx).route = route;
    return answerRoute(ctx, next);
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
    router.register(koaPath(route.path), [route.method.toUpperCase()], [readBody(route, BODY_LIMIT), answerAdmin(route, deps)], { name: route.operationId });
  }
  const dispatch = compose([router.routes() as Middleware, noRoute(router, 'There is no admin API endpoint at this path; see /admin/api/openapi.json')]);
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
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new AppError('ERR_METHOD_NOT_ALLOWED', 'Use GET', { headers: { Allow: 'GET, HEAD' } });
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
      answerWithError(ctx, caught, logger, { bodyLimit: BODY_LIMIT, what: 'admin API' });
    }
    recordWrite(ctx, state);
  };
}
