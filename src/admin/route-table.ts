/**
 * What a JSON API route is: method, path, the schemas of its parts, and the function that answers.
 * One table of these drives both the Koa router and the OpenAPI document (openapi.ts), so what is
 * documented and what answers cannot drift apart: the admin API's table (routes.ts, router.ts), and
 * the registration API's (api/registration.ts), which has its own prefix, callers and dependencies.
 * The steps every such route goes through are route-steps.ts.
 */
import type { Context } from 'koa';
import type { z } from 'zod';

import type { AdminCaller } from './authentication.ts';
import type { AdminApiDependencies } from './dependencies.ts';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';
export type Tag = 'Users' | 'Sessions and grants' | 'Clients' | 'Resource servers' | 'Upstream providers' | 'Keys' | 'Audit events';

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;
type Reply<S> = S extends z.ZodType ? z.input<S> : void;

export interface ApiRequest<P, Q, B, D, C> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  /** Who is calling, as the API's own authentication found out (undefined for an API without any). */
  readonly caller: C;
  readonly deps: D;
  readonly ctx: Context;
  /** Adds details to the admin.action event this write records (ids of what it created, counts). */
  note(details: Record<string, string | number | boolean>): void;
}

export type AdminRequest<P, Q, B> = ApiRequest<P, Q, B, AdminApiDependencies, AdminCaller>;

/** An error status a route documents; the table in errors.ts says what each means. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503;

export interface RouteSpec<P, Q, B, R, D = AdminApiDependencies, C = AdminCaller, T extends string = Tag> {
  readonly method: HttpMethod;
  /** Under the API's prefix (/admin/api), OpenAPI style: `/users/{sub}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: T;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** Absent: the answer is 204 with no body. */
  readonly response?: R;
  readonly status?: 200 | 201;
  /** Statuses this route can answer besides the ones every route of its API can. */
  readonly errors?: readonly ErrorStatus[];
  handle(request: ApiRequest<Out<P>, Out<Q>, Out<B>, D, C>): Promise<Reply<R>>;
}

/** A route with its types erased, as the router and the document generator see it. */
export interface Route<D = AdminApiDependencies, C = AdminCaller> {
  readonly method: HttpMethod;
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  readonly response?: z.ZodType;
  readonly status?: 200 | 201;
  readonly errors?: readonly number[];
  handle(request: ApiRequest<unknown, unknown, unknown, D, C>): Promise<unknown>;
}

/** Keeps an admin route's types precise while it is written, then files it in the table. */
export function defineRoute<
  const P extends z.ZodObject | undefined = undefined,
  const Q extends z.ZodObject | undefined = undefined,
  const B extends z.ZodType | undefined = undefined,
  const R extends z.ZodType | undefined = undefined,
>(spec: RouteSpec<P, Q, B, R>): Route {
  return spec as unknown as Route;
}

/** The same for another API's table, with its own dependencies, caller and tags. */
export function defineApiRoute<D, C, T extends string>() {
  return function define<
    const P extends z.ZodObject | undefined = undefined,
    const Q extends z.ZodObject | undefined = undefined,
    const B extends z.ZodType | undefined = undefined,
    const R extends z.ZodType | undefined = undefined,
  >(spec: RouteSpec<P, Q, B, R, D, C, T>): Route<D, C> {
    return spec as unknown as Route<D, C>;
  };
}

/** `/users/{sub}` -> `/users/:sub`, for the Koa router. */
export function koaPath(path: string): string {
  return path.replace(/\{([a-z_]+)\}/g, ':$1');
}
