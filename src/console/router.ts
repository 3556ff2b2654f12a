/**
 * The admin console, `/admin`: operators run Tessera from a browser. Server-rendered like the
 * account page (forms without JavaScript, CSRF tokens, 303 after every successful POST, the same
 * strict CSP), and it reads and changes everything through the admin API with the operator's own
 * token (admin-calls.ts), so the API's rules, schemas and audit trail apply unchanged.
 *
 * - Getting in: Tessera's own code flow with PKCE (sign-in.ts); only the admin role, always with a
 *   second factor. A person without the role is refused with 403 and told why.
 * - Refusals: the API's `fields` go beside their form fields, its words above the form, with its
 *   status (4xx). A store outage (the API's 503) keeps the page with a banner. Acting on an object
 *   that is gone (a stale page) says so, 404.
 * - Destructive actions (delete an app, end all sessions, reset second factors, rotate keys) need a
 *   ticked confirmation box: no JavaScript dialog. Secrets are shown once (account/notices.ts).
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { Provider } from 'oidc-provider';

import { OneTimeNotices } from '../account/notices.ts';
import { ADMIN_API_PATH } from '../admin/resource.ts';
import type { Config } from '../config.ts';
import { SECURITY_EVENT_TYPES } from '../domain/events.ts';
import { AppError, isAppError } from '../errors.ts';
import { csrfProtection } from '../http/csrf.ts';
import { formField } from '../http/form.ts';
import { renderPage } from '../http/render.ts';
import type { Logger } from '../log.ts';
import { CONSOLE_CALLBACK_PATH, CONSOLE_PATH } from '../oidc/console-client.ts';
import type { OidcStore } from '../store/port.ts';
import { AdminCallError, segment, type AdminApiCaller, type AdminCalls } from './admin-calls.ts';
import { signInChart } from './chart.ts';
import { ConsoleSignIn, safeConsolePath, type ConsoleSession } from './sign-in.ts';

export interface ConsoleRouterDependencies {
  config: Config;
  provider: () => Provider;
  api: AdminApiCaller;
  oidc: OidcStore;
  masterSecret: string;
  logger: Logger;
}

interface Page<T> { items: T[]; next_cursor?: string }
interface User { sub: string; email: string; name?: string; disabled: boolean; roles: string[]; locked_until?: string; second_factor: boolean; created_at: string }
interface UserDetails extends User { email_verified: boolean; identities?: Array<{ upstream: string; subject: string; email?: string; linked_at: string }>; second_factors: { totp: boolean; passkeys: number; email_codes: boolean; recovery_codes_left: number } }
interface Client { client_id: string; kind: string; source: string; client_name?: string; redirect_uris?: string[]; post_logout_redirect_uris?: string[]; token_endpoint_auth_method: string; registered?: string; [key: string]: unknown }
interface Resource { audience: string; name?: string; scopes: string[]; source: string; client_id?: string }
interface Upstream { id: string; name: string; kind: string; preset?: string; issuer?: string; client_id: string; source: string; redirect_uri: string }
interface AuditEvent { id: string; type: string; at: string; sub?: string; client_id?: string; details?: Record<string, unknown> }
interface Key { kid: string; alg: string; use: string; status: string; created_at: string; retired_at?: string; expires_at?: string }

const PAGE_SIZE = 25;
/** Audit events read for the overview's chart: a day of sign-ins on a busy installation is more; the chart says when it stopped. */
const CHART_EVENTS = 1000;

/** What a 303 back to a page says: fixed texts, so nothing from the request is reflected. */
const DONE: Record<string, string> = {
  created: 'The person is created. They were mailed a link to choose a password.',
  'created-with-password': 'The person is created. They were mailed a link to confirm their address.',
  disabled: 'The account is disabled: it cannot sign in.',
  enabled: 'The account is enabled again.',
  unlocked: 'The lockout is lifted.',
  'role-added': 'The role is given.',
  'role-removed': 'The role is taken away.',
  'factors-reset': 'Every second factor of this account is removed.',
  'session-ended': 'That session is ended.',
  'sessions-ended': 'Every session of this account is ended.',
  revoked: 'The app no longer has access to this account.',
  'app-deleted': 'The app is deleted.',
  rotated: 'New signing keys are in use; the old ones stay published until their tokens expire.',
  'app-changed': 'The app is changed.',
  'secret-rotated': 'The app has a new secret; the old one no longer works.',
  'certificate-added': 'The certificate is registered.',
  'certificate-removed': 'The certificate is removed.',
  'subject-added': 'The TLS subject is registered.',
  'subject-removed': 'The TLS subject is removed.',
  'resource-created': 'The resource server is created. Its introspection client is shown here.',
  'resource-deleted': 'The resource server is deleted.',
  'upstream-created': 'The upstream provider is added. Register the redirect URI shown there.',
  'upstream-deleted': 'The upstream provider is removed.',
};

/** The page a console form posts from: where to come back after signing in again (`/admin/keys/rotate` -> `/admin/keys`). */
export function pageOfAction(path: string): string {
  const match = /^\/admin\/(people|apps)\/([^/]+)\/[^/]+$/.exec(path);
  if (match) return `/admin/${match[1]}/${match[2]}`;
  if (path === '/admin/keys/rotate') return '/admin/keys';
  if (path === '/admin/resources' || path.startsWith('/admin/resources/')) return '/admin/apps';
  if (path.startsWith('/admin/upstreams/')) return '/admin/upstreams';
  return path === '/admin/people' || path === '/admin/apps' || path === '/admin/upstreams' ? path : CONSOLE_PATH;
}

function seeOther(ctx: Context, location: string): void {
  ctx.status = 303;
  ctx.redirect(location);
}

function done(ctx: Context): string | undefined {
  return typeof ctx.query.done === 'string' ? DONE[ctx.query.done] : undefined;
}

function queryText(ctx: Context, name: string): string {
  const value = ctx.query[name];
  return typeof value === 'string' ? value : '';
}

function calls(ctx: Context): AdminCalls {
  return ctx.state.adminCalls as AdminCalls;
}

function operator(ctx: Context): ConsoleSession {
  return ctx.state.consoleSession as ConsoleSession;
}

function checked(ctx: Context, name: string): boolean {
  return formField(ctx, name) === 'yes';
}

/** An audience or id as part of an element id (the views spell it the same way). */
function fieldId(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_');
}

function lines(text: string): string[] {
  return text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
}

export function consoleRouter({ config, provider, api, oidc, masterSecret, logger }: ConsoleRouterDependencies): Middleware {
  const router = new Router({ prefix: CONSOLE_PATH });
  const signIn = new ConsoleSignIn(config.issuer, provider);
  const secrets = new OneTimeNotices(oidc, masterSecret);

  /**
   * Shows a console page; an API refusal while reading it becomes a banner (a 503 for an outage,
   * its own status otherwise) over whatever could be read, never a 500.
   */
  async function show(ctx: Context, view: string, title: string, locals: Record<string, unknown>, problem?: AdminCallError) {
    if (problem) ctx.status = problem.status;
    await renderPage(ctx, `console/${view}`, {
      title,
      section: view.split('-')[0],
      operatorSub: operator(ctx).sub,
      done: done(ctx),
      banner: problem && (problem.unavailable ? 'The store is not answering right now: what you see may be incomplete. Try again in a few seconds.' : problem.message),
      fields: problem?.fields ?? {},
      values: {},
      ...locals,
    });
  }

  /** Runs the API reads of a page; a refusal is kept for the banner and the page renders with what it has. */
  async function read<T>(work: () => Promise<T>, fallback: T): Promise<[T, AdminCallError | undefined]> {
    try {
      return [await work(), undefined];
    } catch (error) {
      if (error instanceof AdminCallError) return [fallback, error];
      throw error;
    }
  }

  /**
   * Lets a request through only with a console session whose Tessera session still exists. A GET
   * without one goes through the sign-in (silently, while the Tessera session lives); a POST goes
   * back to the page it came from, which does.
   */
  async function requireOperator(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    const session = signIn.current(ctx);
    if (!session) {
      if (ctx.method === 'GET') return ctx.redirect(await signIn.start(ctx, ctx.originalUrl));
      return seeOther(ctx, `${CONSOLE_PATH}/signin?expired=1&return=${encodeURIComponent(safeConsolePath(pageOfAction(ctx.path)))}`);
    }
    signIn.remember(ctx, session);
    ctx.state.consoleSession = session;
    ctx.state.adminCalls = api.as(session.accessToken, ctx.state.requestId);
    try {
      await next();
    } catch (error) {
      // The API refused the token itself (role taken away, account disabled): the console session ends.
      if (error instanceof AdminCallError && (error.status === 401 || error.status === 403)) {
        signIn.forget(ctx);
        ctx.status = error.status;
        return renderPage(ctx, 'console/refused', { title: 'No access to the admin console', description: error.message });
      }
      throw error;
    }
  }

  /**
   * A write through the API: on success 303 to `location`; refused, the page again with the API's
   * words and fields beside the form (`again`), or a 404 page saying the object is gone.
   */
  async function write(ctx: Context, work: () => Promise<unknown>, location: string, again: (problem: AdminCallError) => Promise<void>) {
    try {
      await work();
    } catch (error) {
      if (!(error instanceof AdminCallError) || error.status === 401 || error.status === 403) throw error;
      if (error.gone) {
        ctx.status = 404;
        return show(ctx, 'gone', 'Not found', { description: `${error.message}. It may have been deleted since this page was loaded.` });
      }
      return again(error);
    }
    seeOther(ctx, location);
  }

  router.use(bodyParser({ enableTypes: ['form'], formLimit: '32kb', encoding: 'utf-8' }));
  router.use(csrfProtection);

  router.get('/signin', async function startSignIn(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(await signIn.start(ctx, safeConsolePath(ctx.query.return)));
  });

  router.get(CONSOLE_CALLBACK_PATH.slice(CONSOLE_PATH.length), async function finishSignIn(ctx) {
    ctx.set('Cache-Control', 'no-store');
    try {
      const { session, returnTo } = await signIn.finish(ctx);
      logger.info({ sub: session.sub }, 'signed in to the admin console');
      ctx.redirect(returnTo);
    } catch (error) {
      if (!isAppError(error, 'ERR_INVALID_INPUT') && !isAppError(error, 'ERR_INSUFFICIENT_SCOPE')) throw error;
      ctx.status = error.status;
      await renderPage(ctx, 'console/refused', { title: error.status === 403 ? 'No access to the admin console' : 'Sign-in did not complete', description: error.message });
    }
  });

  router.post('/signout', requireOperator, async function signOut(ctx) {
    signIn.forget(ctx);
    // Tessera's own session stays (the operator may be signed in to apps); its end-session page ends that too.
    seeOther(ctx, '/session/end');
  });

  // --- Overview ---

  router.get('/', requireOperator, async function showOverview(ctx) {
    const since = new Date(Date.now() - 24 * 3600_000);
    const signIns = async () => {
      const found: AuditEvent[] = [];
      let cursor: string | undefined;
      do {
        const page = await calls(ctx).get<Page<AuditEvent>>('/audit-events', { type: ['signin.succeeded', 'signin.failed'], since: since.toISOString(), limit: 200, cursor });
        found.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor && found.length < CHART_EVENTS);
      return { events: found, truncated: Boolean(cursor) };
    };
    // The reads are independent: in parallel, so the page costs the slowest of them, not their sum.
    // Counts and the locked list are indexed reads (the store's count, the lockout index): cheap with a million accounts.
    const lockedList = async (): Promise<{ counts: { total: number; locked: number } | undefined; locked: Page<User> }> => {
      const counts = await calls(ctx).get<{ total: number; locked: number }>('/account-counts');
      const locked = counts.locked ? await calls(ctx).get<Page<User>>('/users', { status: 'locked', limit: 10 }) : { items: [] as User[] };
      return { counts, locked };
    };
    const [[chartData, auditProblem], [accounts, accountsProblem], [keys, keysProblem]] = await Promise.all([
      read(signIns, { events: [] as AuditEvent[], truncated: false }),
      read(lockedList, { counts: undefined, locked: { items: [] as User[] } }),
      read(() => calls(ctx).get<Page<Key>>('/keys', { limit: 100 }), { items: [] as Key[] }),
    ]);
    const { events, truncated } = chartData;
    const { counts, locked } = accounts;
    const problem = [auditProblem, accountsProblem, keysProblem].find(Boolean);
    await show(ctx, 'overview', 'Overview', {
      chart: signInChart(events.map((event) => ({ at: new Date(event.at), failed: event.type === 'signin.failed' })), since, new Date()),
      truncated,
      counts,
      locked: locked.items,
      keys: keys.items.map((key) => ({ ...key, ageDays: Math.floor((Date.now() - Date.parse(key.created_at)) / 86_400_000) })),
      storeAnswering: !problem?.unavailable,
    }, problem);
  });

  // --- People ---

  async function showPeople(ctx: Context, problem?: AdminCallError, values: Record<string, string> = {}) {
    const q = queryText(ctx, 'q').trim();
    const match = queryText(ctx, 'match') === 'part' ? 'part' : 'start';
    const cursor = queryText(ctx, 'cursor') || undefined;
    // The start of the email by default: the email index serves it at any size (email order). Part
    // of it anywhere (`match=part`) reads every account, so it is what the operator asks for, not the default.
    const filter = q ? (match === 'part' ? { q } : { email_prefix: q }) : {};
    const [page, readProblem] = await read(() => calls(ctx).get<Page<User>>('/users', { ...filter, limit: PAGE_SIZE, cursor }), { items: [] });
    await show(ctx, 'people', 'People', { q, match, users: page.items, nextCursor: page.next_cursor, values }, problem ?? readProblem);
  }

  router.get('/people', requireOperator, async function listPeople(ctx) {
    await showPeople(ctx);
  });

  router.post('/people', requireOperator, async function createPerson(ctx) {
    const values = { email: formField(ctx, 'email'), name: formField(ctx, 'name'), admin: formField(ctx, 'admin') };
    const password = formField(ctx, 'password');
    let created: { sub: string } | undefined;
    await write(ctx, async () => {
      created = await calls(ctx).send<{ sub: string }>('post', '/users', {
        email: values.email,
        ...(values.name && { name: values.name }),
        ...(password && { password }),
        ...(values.admin === 'yes' && { roles: ['admin'] }),
      });
    }, '', (problem) => showPeople(ctx, problem, values));
    if (created) seeOther(ctx, `${CONSOLE_PATH}/people/${segment(created.sub)}?done=${password ? 'created-with-password' : 'created'}`);
  });

  async function showPerson(ctx: Context, sub: string, problem?: AdminCallError) {
    const base = `/users/${segment(sub)}`;
    const [user, userProblem] = await read(() => calls(ctx).get<UserDetails>(base), undefined);
    if (userProblem?.gone) {
      ctx.status = 404;
      return show(ctx, 'gone', 'Not found', { description: 'There is no such person: the account may have been deleted.' });
    }
    const [sessions, sessionsProblem] = await read(() => calls(ctx).get<Page<Record<string, unknown>>>(`${base}/sessions`, { limit: 100 }), { items: [] });
    const [grants, grantsProblem] = await read(() => calls(ctx).get<Page<Record<string, unknown>>>(`${base}/grants`, { limit: 100 }), { items: [] });
    await show(ctx, 'person', user ? user.email : 'Person', { user, sub, sessions: sessions.items, grants: grants.items }, problem ?? userProblem ?? sessionsProblem ?? grantsProblem);
  }

  router.get('/people/:sub', requireOperator, async function personPage(ctx) {
    await showPerson(ctx, ctx.params.sub!);
  });

  /** One POST per action on a person, each a single admin API call. */
  const personActions: Record<string, { done: string; confirm?: boolean; call(ctx: Context, base: string): Promise<unknown> }> = {
    disable: { done: 'disabled', call: (ctx, base) => calls(ctx).send('patch', base, { disabled: true }) },
    enable: { done: 'enabled', call: (ctx, base) => calls(ctx).send('patch', base, { disabled: false }) },
    unlock: { done: 'unlocked', call: (ctx, base) => calls(ctx).send('delete', `${base}/lockout`) },
    'add-role': { done: 'role-added', call: (ctx, base) => calls(ctx).send('put', `${base}/roles/${segment(formField(ctx, 'role'))}`) },
    'remove-role': { done: 'role-removed', call: (ctx, base) => calls(ctx).send('delete', `${base}/roles/${segment(formField(ctx, 'role'))}`) },
    'reset-factors': { done: 'factors-reset', confirm: true, call: (ctx, base) => calls(ctx).send('delete', `${base}/second-factors`) },
    'end-session': { done: 'session-ended', call: (ctx, base) => calls(ctx).send('delete', `${base}/sessions/${segment(formField(ctx, 'session_id'))}`) },
    'end-sessions': { done: 'sessions-ended', confirm: true, call: (ctx, base) => calls(ctx).send('delete', `${base}/sessions`) },
    'revoke-app': { done: 'revoked', call: (ctx, base) => calls(ctx).send('delete', `${base}/grants/${segment(formField(ctx, 'client_id'))}`) },
  };

  router.post('/people/:sub/:action', requireOperator, async function actOnPerson(ctx) {
    const sub = ctx.params.sub!;
    const action = personActions[ctx.params.action!];
    if (!action) throw new AppError('ERR_NOT_FOUND', 'There is no such action.');
    const back = `${CONSOLE_PATH}/people/${segment(sub)}`;
    if (action.confirm && !checked(ctx, 'confirm')) {
      ctx.status = 400;
      return showPerson(ctx, sub, new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { [`confirm-${ctx.params.action}`]: 'Tick to confirm' }));
    }
    await write(ctx, () => action.call(ctx, `/users/${segment(sub)}`), `${back}?done=${action.done}`, (problem) => showPerson(ctx, sub, problem));
  });

  // --- Apps ---

  async function showApps(ctx: Context, problem?: AdminCallError, values: Record<string, string> = {}) {
    const [clients, clientsProblem] = await read(() => calls(ctx).get<Page<Client>>('/clients', { limit: 100, cursor: queryText(ctx, 'cursor') || undefined }), { items: [] });
    const [resources, resourcesProblem] = await read(() => calls(ctx).get<Page<Resource>>('/resources', { limit: 100 }), { items: [] });
    await show(ctx, 'apps', 'Apps', { clients: clients.items, nextCursor: clients.next_cursor, resources: resources.items, values }, problem ?? clientsProblem ?? resourcesProblem);
  }

  /** The secret of something just created or rotated survives the 303 once, sealed, for this operator only. */
  async function withSecret(ctx: Context, location: string, secret: string | undefined, doneKey?: string): Promise<string> {
    const query = new URLSearchParams({ ...(doneKey && { done: doneKey }), ...(secret && { secret: await secrets.put(operator(ctx).sub, [secret]) }) }).toString();
    return query ? `${location}?${query}` : location;
  }

  router.post('/resources', requireOperator, async function createResource(ctx) {
    const values = { audience: formField(ctx, 'audience').trim(), resource_name: formField(ctx, 'resource_name'), scopes: formField(ctx, 'scopes') };
    let created: { client_id?: string; client_secret?: string } | undefined;
    await write(ctx, async () => {
      created = await calls(ctx).send('post', '/resources', {
        audience: values.audience,
        ...(values.resource_name.trim() && { name: values.resource_name.trim() }),
        scopes: values.scopes.split(/[\s,]+/).filter(Boolean),
      });
    }, '', (problem) => {
      // The app form on the same page has its own `name`: this form's is resource_name.
      const { name, ...rest } = problem.fields;
      return showApps(ctx, new AdminCallError(problem.status, problem.error, problem.message, { ...rest, ...(name && { resource_name: name }) }), values);
    });
    if (!created) return;
    // Its introspection client's secret is the one to copy: shown once on that client's page.
    seeOther(ctx, created.client_id ? await withSecret(ctx, `${CONSOLE_PATH}/apps/${segment(created.client_id)}`, created.client_secret, 'resource-created') : `${CONSOLE_PATH}/apps`);
  });

  router.post('/resources/:audience/delete', requireOperator, async function deleteResource(ctx) {
    const audience = ctx.params.audience!;
    if (!checked(ctx, 'confirm')) {
      ctx.status = 400;
      return showApps(ctx, new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { [`confirm-resource-${fieldId(audience)}`]: 'Tick to confirm' }));
    }
    await write(ctx, () => calls(ctx).send('delete', `/resources/${segment(audience)}`), `${CONSOLE_PATH}/apps?done=resource-deleted`, (problem) => showApps(ctx, problem));
  });

  router.get('/apps', requireOperator, async function listApps(ctx) {
    await showApps(ctx);
  });

  router.post('/apps', requireOperator, async function createApp(ctx) {
    const values = { name: formField(ctx, 'name'), kind: formField(ctx, 'kind'), redirect_uris: formField(ctx, 'redirect_uris'), resources: formField(ctx, 'resources') };
    const body = values.kind === 'machine'
      ? { kind: 'machine', name: values.name, resources: Object.fromEntries(lines(values.resources).map((line) => { const [audience = '', ...scopes] = line.split(/\s+/); return [audience, scopes]; })) }
      : { kind: 'relying_party', name: values.name, redirect_uris: lines(values.redirect_uris) };
    let created: { client_id: string; client_secret?: string } | undefined;
    await write(ctx, async () => {
      created = await calls(ctx).send('post', '/clients', body);
    }, '', (problem) => showApps(ctx, problem, values));
    if (!created) return;
    // The secret survives the redirect once, sealed, for this operator only; reloading shows it no more.
    seeOther(ctx, await withSecret(ctx, `${CONSOLE_PATH}/apps/${segment(created.client_id)}`, created.client_secret));
  });

  async function showApp(ctx: Context, clientId: string, problem?: AdminCallError, values: Record<string, string> = {}) {
    const [client, clientProblem] = await read(() => calls(ctx).get<Client>(`/clients/${segment(clientId)}`), undefined);
    if (clientProblem?.gone) {
      ctx.status = 404;
      return show(ctx, 'gone', 'Not found', { description: 'There is no such app: it may have been deleted.' });
    }
    const secretId = queryText(ctx, 'secret');
    const secret = secretId ? (await secrets.take(operator(ctx).sub, secretId))?.[0] : undefined;
    await show(ctx, 'app', client?.client_name ?? clientId, { client, clientId, secret, secretGone: Boolean(secretId) && !secret, values }, problem ?? clientProblem);
  }

  /** One POST per action on an app, each a single admin API call; `values` are the form's, kept when refused. */
  const appActions: Record<string, { done: string; confirm?: boolean; values?: (ctx: Context) => Record<string, string>; call(ctx: Context, base: string, values: Record<string, string>): Promise<unknown> }> = {
    edit: {
      done: 'app-changed',
      values: (ctx) => ({ client_name: formField(ctx, 'client_name'), redirect_uris: formField(ctx, 'redirect_uris'), post_logout_redirect_uris: formField(ctx, 'post_logout_redirect_uris') }),
      call: (ctx, base, values) => calls(ctx).send('patch', base, {
        client_name: values.client_name,
        redirect_uris: lines(values.redirect_uris ?? ''),
        post_logout_redirect_uris: lines(values.post_logout_redirect_uris ?? ''),
      }),
    },
    'add-certificate': {
      done: 'certificate-added',
      values: (ctx) => ({ certificate: formField(ctx, 'certificate') }),
      call: (ctx, base, values) => calls(ctx).send('post', `${base}/certificates`, { certificate: values.certificate }),
    },
    'remove-certificate': { done: 'certificate-removed', call: (ctx, base) => calls(ctx).send('delete', `${base}/certificates/${segment(formField(ctx, 'thumbprint'))}`) },
    'add-subject': {
      done: 'subject-added',
      values: (ctx) => ({ type: formField(ctx, 'type'), value: formField(ctx, 'value') }),
      call: (ctx, base, values) => calls(ctx).send('post', `${base}/tls-subjects`, { type: values.type, value: values.value }),
    },
    'remove-subject': {
      done: 'subject-removed',
      call: (ctx, base) => calls(ctx).send('delete', `${base}/tls-subjects?${new URLSearchParams({ type: formField(ctx, 'type'), value: formField(ctx, 'value') })}`),
    },
  };

  router.post('/apps/:client_id/rotate-secret', requireOperator, async function rotateSecret(ctx) {
    const clientId = ctx.params.client_id!;
    if (!checked(ctx, 'confirm')) {
      ctx.status = 400;
      return showApp(ctx, clientId, new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { 'confirm-rotate-secret': 'Tick to confirm' }));
    }
    let rotated: { client_secret: string } | undefined;
    await write(ctx, async () => {
      rotated = await calls(ctx).send('post', `/clients/${segment(clientId)}/secret`);
    }, '', (problem) => showApp(ctx, clientId, problem));
    if (rotated) seeOther(ctx, await withSecret(ctx, `${CONSOLE_PATH}/apps/${segment(clientId)}`, rotated.client_secret, 'secret-rotated'));
  });

  router.get('/apps/:client_id', requireOperator, async function appPage(ctx) {
    await showApp(ctx, ctx.params.client_id!);
  });

  router.post('/apps/:client_id/delete', requireOperator, async function deleteApp(ctx) {
    const clientId = ctx.params.client_id!;
    if (!checked(ctx, 'confirm')) {
      ctx.status = 400;
      return showApp(ctx, clientId, new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { 'confirm-delete': 'Tick to confirm' }));
    }
    await write(ctx, () => calls(ctx).send('delete', `/clients/${segment(clientId)}`), `${CONSOLE_PATH}/apps?done=app-deleted`, (problem) => showApp(ctx, clientId, problem));
  });

  router.post('/apps/:client_id/:action', requireOperator, async function actOnApp(ctx) {
    const clientId = ctx.params.client_id!;
    const action = appActions[ctx.params.action!];
    if (!action) throw new AppError('ERR_NOT_FOUND', 'There is no such action.');
    const values = action.values?.(ctx) ?? {};
    await write(ctx, () => action.call(ctx, `/clients/${segment(clientId)}`, values), `${CONSOLE_PATH}/apps/${segment(clientId)}?done=${action.done}`, (problem) => showApp(ctx, clientId, problem, values));
  });

  // --- Upstream identity providers ---

  async function showUpstreams(ctx: Context, problem?: AdminCallError, values: Record<string, string> = {}) {
    const [upstreams, readProblem] = await read(() => calls(ctx).get<Page<Upstream>>('/upstreams', { limit: 100 }), { items: [] });
    await show(ctx, 'upstreams', 'Upstream providers', { upstreams: upstreams.items, values }, problem ?? readProblem);
  }

  router.get('/upstreams', requireOperator, async function listUpstreams(ctx) {
    await showUpstreams(ctx);
  });

  router.post('/upstreams', requireOperator, async function createUpstream(ctx) {
    const values = { id: formField(ctx, 'id').trim(), name: formField(ctx, 'name'), preset: formField(ctx, 'preset'), issuer: formField(ctx, 'issuer').trim(), client_id: formField(ctx, 'client_id').trim() };
    const clientSecret = formField(ctx, 'client_secret');
    await write(ctx, () => calls(ctx).send('post', '/upstreams', {
      id: values.id,
      ...(values.name.trim() && { name: values.name.trim() }),
      ...(values.preset && { preset: values.preset }),
      ...(values.issuer && { issuer: values.issuer }),
      client_id: values.client_id,
      client_secret: clientSecret,
    }), `${CONSOLE_PATH}/upstreams?done=upstream-created`, (problem) => showUpstreams(ctx, problem, values));
  });

  router.post('/upstreams/:id/delete', requireOperator, async function deleteUpstream(ctx) {
    const id = ctx.params.id!;
    if (!checked(ctx, 'confirm')) {
      ctx.status = 400;
      return showUpstreams(ctx, new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { [`confirm-upstream-${fieldId(id)}`]: 'Tick to confirm' }));
    }
    await write(ctx, () => calls(ctx).send('delete', `/upstreams/${segment(id)}`), `${CONSOLE_PATH}/upstreams?done=upstream-deleted`, (problem) => showUpstreams(ctx, problem));
  });

  // --- Keys ---

  router.get('/keys', requireOperator, async function listKeys(ctx) {
    const [keys, problem] = await read(() => calls(ctx).get<Page<Key>>('/keys', { limit: 100 }), { items: [] });
    await show(ctx, 'keys', 'Keys', { keys: keys.items }, problem);
  });

  router.post('/keys/rotate', requireOperator, async function rotateKeys(ctx) {
    const again = async (problem: AdminCallError) => {
      const [keys] = await read(() => calls(ctx).get<Page<Key>>('/keys', { limit: 100 }), { items: [] });
      await show(ctx, 'keys', 'Keys', { keys: keys.items }, problem);
    };
    if (!checked(ctx, 'confirm')) {
      ctx.status = 400;
      return again(new AdminCallError(400, 'invalid_request', 'Tick the box to confirm first.', { 'confirm-rotate': 'Tick to confirm' }));
    }
    await write(ctx, () => calls(ctx).send('post', '/keys/rotate'), `${CONSOLE_PATH}/keys?done=rotated`, again);
  });

  // --- Audit ---

  router.get('/audit', requireOperator, async function auditTrail(ctx) {
    const filters = { sub: queryText(ctx, 'sub').trim(), client_id: queryText(ctx, 'client_id').trim(), type: queryText(ctx, 'type'), since: queryText(ctx, 'since'), until: queryText(ctx, 'until') };
    // <input type="datetime-local"> sends local time without a zone; the console reads it as UTC and says so.
    const asInstant = (value: string) => (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) ? `${value.length === 16 ? `${value}:00` : value}Z` : value || undefined);
    const [page, problem] = await read(() => calls(ctx).get<Page<AuditEvent>>('/audit-events', {
      limit: PAGE_SIZE,
      cursor: queryText(ctx, 'cursor') || undefined,
      sub: filters.sub || undefined,
      client_id: filters.client_id || undefined,
      type: filters.type || undefined,
      since: asInstant(filters.since),
      until: asInstant(filters.until),
    }), { items: [] });
    const next = page.next_cursor && new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, value]) => value)), cursor: page.next_cursor }).toString();
    await show(ctx, 'audit', 'Audit trail', { events: page.items, filters, types: SECURITY_EVENT_TYPES, next }, problem);
  });

  const routes = router.routes() as Middleware;
  const methods = router.allowedMethods() as Middleware;
  return async function adminConsole(ctx: Context, next: Next) {
    // The admin API shares the /admin prefix and is not the console's.
    if (ctx.path === ADMIN_API_PATH || ctx.path.startsWith(`${ADMIN_API_PATH}/`)) return next();
    if (ctx.path !== CONSOLE_PATH && !ctx.path.startsWith(`${CONSOLE_PATH}/`)) return next();
    await routes(ctx, async () => methods(ctx, next));
  };
}
