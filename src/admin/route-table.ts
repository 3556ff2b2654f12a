/**
 * What an admin API route is: method, path, the schemas of its parts, and the function that answers.
 * One table of these (routes.ts) drives both the Koa router (router.ts) and the OpenAPI document
 * (openapi.ts), so what is documented and what answers cannot drift apart.
 */
import type { Context } from 'koa';
import type { z } from 'zod';

import type { AdminCaller } from './authentication.ts';
import type { AdminApiDependencies } from './dependencies.ts';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';
export type Tag = 'Users' | 'Sessions and grants' | 'Clients' | 'Resource servers' | 'Upstream providers' | 'Keys' | 'Audit events';

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;
type Reply<S> = S extends z.ZodType ? z.input<S> : void;

export interface AdminRequest<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly caller: AdminCaller;
  readonly deps: AdminApiDependencies;
  readonly ctx: Context;
  /** Adds details to the admin.action event this write records (ids of what it created, counts). */
  note(details: Record<string, string | number | boolean>): void;
}

export interface RouteSpec<P, Q, B, R> {
  readonly method: HttpMethod;
  /** Under /admin/api, OpenAPI style: `/users/{sub}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: Tag;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** Absent: the answer is 204 with no body. */
  readonly response?: R;
  readonly status?: 200 | 201;
  /** Statuses this route can answer besides the ones every route can (400, 401, 403, 429). */
  readonly errors?: readonly (404 | 409 | 413 | 415 | 503)[];
  handle(request: AdminRequest<Out<P>, Out<Q>, Out<B>>): Promise<Reply<R>>;
}

/** A route with its types erased, as the router and the document generator see it. */
export interface Route {
  readonly method: HttpMethod;
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: Tag;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  readonly response?: z.ZodType;
  readonly status?: 200 | 201;
  readonly errors?: readonly number[];
  handle(request: AdminRequest<unknown, unknown, unknown>): Promise<unknown>;
}

/** Keeps a route's types precise while it is written, then files it in the table. */
export function defineRoute<
  const P extends z.ZodObject | undefined = undefined,
  const Q extends z.ZodObject | undefined = undefined,
  const B extends z.ZodType | undefined = undefined,
  const R extends z.ZodType | undefined = undefined,
>(spec: RouteSpec<P, Q, B, R>): Route {
  return spec as unknown as Route;
}

/** `/users/{sub}` -> `/users/:sub`, for the Koa router. */
export function koaPath(path: string): string {
  return path.replace(/\{([a-z_]+)\}/g, ':$1');
}
