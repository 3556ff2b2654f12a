/**
 * Every admin API endpoint, in one table: users (with their sessions and grants), clients,
 * resource servers, keys and audit events. Each entry names its schemas (schemas.ts) and answers
 * through the same domain services as the CLI, so the rules are the same whichever an operator uses.
 */
import { normalizeEmail, registrationSchema } from '../domain/accounts.ts';
import { isLocked } from '../domain/lockout.ts';
import { randomId } from '../domain/random.ts';
import { AppError, isAppError } from '../errors.ts';
import { accountSessions, destroySession, endOtherSessions, listConnectedApps, listSessions, revokeApp } from '../oidc/sessions-and-grants.ts';
import type { Account } from '../store/port.ts';
import type { AdminApiDependencies } from './dependencies.ts';
import { pageOf } from './pagination.ts';
import { invalidRequest } from './route-steps.ts';
import { defineRoute, type Route } from './route-table.ts';
import * as schemas from './schemas.ts';
import { auditEventView, clientKind, clientView, resourceView, sessionHandle, sessionView, upstreamView, userDetailsView, userView } from './views.ts';

// --- Users ---

async function findUser(deps: AdminApiDependencies, sub: string): Promise<Account> {
  const account = await deps.services.accounts.findBySub(sub);
  if (!account) throw new AppError('ERR_NOT_FOUND', 'There is no user with this sub');
  return account;
}

async function userDetails(deps: AdminApiDependencies, sub: string) {
  const account = await findUser(deps, sub);
  return userDetailsView(account, await deps.services.secondFactors.summary(sub), await deps.services.identities.list(sub));
}

function brief(deps: AdminApiDependencies, account: Account) {
  return userView(account, deps.services.secondFactors.hasSecondFactor(account));
}

/** How the admin API spells a part of an email: as the store keeps emails (trimmed, NFC, lower-case). */
function emailPart(text: string | undefined): string | undefined {
  const part = text?.trim().normalize('NFC').toLowerCase();
  return part || undefined;
}

const listUsers = defineRoute({
  method: 'get',
  path: '/users',
  operationId: 'listUsers',
  tag: 'Users',
  summary: 'List users, oldest first; find them by email, its start, part of it, role or status',
  description: 'With `email_prefix` the list is in email order (the email index serves it); otherwise oldest first. Filters combine; every page but the last is full.',
  ...schemas.listUsers,
  async handle({ query, deps }) {
    const now = new Date();
    const needle = emailPart(query.q);
    const prefix = emailPart(query.email_prefix);

    if (query.email !== undefined) {
      if (query.cursor !== undefined) throw invalidRequest('An email finds at most one user: there is no next page', { cursor: 'Not with email' });
      const account = await deps.services.accounts.findByEmail(query.email);
      const matches = account
        && (!needle || account.email.includes(needle))
        && (!prefix || account.email.startsWith(prefix))
        && (!query.role || account.roles.includes(query.role))
        && (!query.status || query.status === (account.disabled ? 'disabled' : isLocked(account, now) ? 'locked' : 'active'));
      return { items: account && matches ? [brief(deps, account)] : [] };
    }
    let page;
    try {
      // Filtered and paged in the store, through its indexes: no scan of every account here.
      page = await deps.services.accounts.search({
        ...(prefix && { emailPrefix: prefix }),
        ...(needle && { query: needle }),
        ...(query.role && { role: query.role }),
        ...(query.status && { status: query.status, at: now }),
        limit: query.limit,
        ...(query.cursor !== undefined && { cursor: query.cursor }),
      });
    } catch (error) {
      if (isAppError(error, 'ERR_INVALID_INPUT')) throw invalidRequest('cursor is not the next_cursor of an earlier page', { cursor: 'Not a cursor from this API' });
      throw error;
    }
    return {
      items: page.accounts.map((account) => brief(deps, account)),
      ...(page.next !== undefined && { next_cursor: page.next }),
    };
  },
});

const getUser = defineRoute({
  method: 'get',
  path: '/users/{sub}',
  operationId: 'getUser',
  tag: 'Users',
  summary: 'A user, with their second factors (never their secrets)',
  errors: [404],
  ...schemas.getUser,
  handle: ({ params, deps }) => userDetails(deps, params.sub),
});

const countUsers = defineRoute({
  method: 'get',
  path: '/account-counts',
  operationId: 'countUsers',
  tag: 'Users',
  summary: 'How many accounts there are, and how many are locked now',
  description: 'Cheap at any size (the store\'s own count, and the lockout index): what an overview shows.',
  ...schemas.countUsers,
  async handle({ deps }) {
    const { accounts } = deps.services;
    const [total, locked] = await Promise.all([accounts.count(), accounts.count({ lockedAt: new Date() })]);
    return { total, locked };
  },
});

const WIRE_NAMES: Record<string, string> = { givenName: 'given_name', familyName: 'family_name' };

const createUser = defineRoute({
  method: 'post',
  path: '/users',
  operationId: 'createUser',
  tag: 'Users',
  summary: 'Create a user',
  description: [
    'The password policy is the registration page\'s. Without a password, the person is mailed a link to choose one',
    '(a password reset link); with one, they are mailed a link to confirm their address, as after registering.',
  ].join(' '),
  status: 201,
  errors: [409, 413, 415],
  ...schemas.createUser,
  async handle({ body, deps, note }) {
    const { accounts, roles, passwordReset, emailVerification } = deps.services;
    const shape = registrationSchema.safeParse({ email: body.email, password: body.password ?? '', name: body.name, givenName: body.given_name, familyName: body.family_name });
    const fields: Record<string, string> = {};
    for (const issue of shape.success ? [] : shape.error.issues) fields[WIRE_NAMES[String(issue.path[0])] ?? String(issue.path[0] ?? '_')] ??= issue.message;
    if (body.password !== undefined) {
      const problem = await accounts.passwordPolicy.check(body.password, { email: shape.success ? shape.data.email : normalizeEmail(body.email) });
      if (problem) fields.password = problem.message;
    }
    if (Object.keys(fields).length) throw invalidRequest(Object.values(fields).join('. '), fields);

    // No password given: a long random one nobody knows, until the person chooses theirs through the link.
    const account = await accounts.register({
      email: body.email,
      password: body.password ?? randomId(32),
      name: body.name,
      givenName: body.given_name,
      familyName: body.family_name,
    }).catch((error: unknown) => {
      // The admin API names every 409 `conflict` (its published contract); the field says which.
      if (isAppError(error, 'ERR_EMAIL_TAKEN')) throw new AppError('ERR_CONFLICT', 'An account with this email already exists', { fields: { email: 'Already registered' } });
      throw error;
    });
    note({ created_sub: account.sub });
    for (const role of body.roles ?? []) await roles.add(account.email, role);
    if (body.password === undefined) {
      await passwordReset.request(account.email);
    } else {
      emailVerification.send(account).catch((error: unknown) => deps.logger.error({ err: error, sub: account.sub }, 'could not send the verification email'));
    }
    return { ...brief(deps, await findUser(deps, account.sub)), password_link_sent: body.password === undefined };
  },
});

const importUsers = defineRoute({
  method: 'post',
  path: '/users/import',
  operationId: 'importUsers',
  tag: 'Users',
  summary: 'Import a batch of users with their password hashes',
  description: [
    `The batch form of \`tessera users import\` (at most ${schemas.MAX_IMPORT_RECORDS} records a request): the same checks, matching and answer.`,
    'Bad records are reported in `errors` by position and never stop the good ones; a re-run skips what was imported or changed since.',
    'Hashes are kept as they are and become argon2id at each person\'s first sign-in.',
  ].join(' '),
  ...schemas.importUsers,
  async handle({ body, deps, note }) {
    const records = body.records.map((fields, index) => ({ line: index + 1, fields }));
    const report = await deps.services.userImport.import(records, { dryRun: body.dry_run, allowWeakHashes: body.allow_weak_hashes });
    note({ imported: report.imported, updated: report.updated, skipped: report.skipped, errors: report.errors.length, dry_run: report.dry_run });
    return report;
  },
});

const updateUser = defineRoute({
  method: 'patch',
  path: '/users/{sub}',
  operationId: 'updateUser',
  tag: 'Users',
  summary: 'Disable or enable a user, or change their names',
  description: 'A disabled user cannot sign in, their sessions end (the apps with a back-channel logout URI are sent logout tokens) and their refresh tokens stop working; access tokens already issued run out within their lifetime.',
  errors: [404, 413, 415],
  ...schemas.updateUser,
  async handle({ params, body, deps }) {
    const account = await findUser(deps, params.sub);
    if (body.disabled !== undefined && body.disabled !== account.disabled) {
      await deps.services.accounts.setDisabled(account.email, body.disabled);
      if (body.disabled) await deps.services.endAllSessions(account.sub);
    }
    if (body.name !== undefined || body.given_name !== undefined || body.family_name !== undefined) {
      // updateProfile replaces all three names; a field not sent keeps its value, null clears it.
      const keep = (sent: string | null | undefined, current: string | undefined) => (sent === undefined ? current : sent ?? undefined);
      await deps.services.accounts.updateProfile(account.sub, {
        name: keep(body.name, account.name),
        givenName: keep(body.given_name, account.givenName),
        familyName: keep(body.family_name, account.familyName),
      });
    }
    return userDetails(deps, account.sub);
  },
});

const unlockUser = defineRoute({
  method: 'delete',
  path: '/users/{sub}/lockout',
  operationId: 'unlockUser',
  tag: 'Users',
  summary: 'Lift a lockout after failed sign-ins, and start the count over',
  errors: [404],
  ...schemas.unlockUser,
  async handle({ params, deps }) {
    const account = await findUser(deps, params.sub);
    await deps.services.accounts.unlock(account.email);
  },
});

const resetSecondFactors = defineRoute({
  method: 'delete',
  path: '/users/{sub}/second-factors',
  operationId: 'resetSecondFactors',
  tag: 'Users',
  summary: 'Remove every second factor of a user who lost them',
  description: 'Authenticator app, passkeys, codes by email and recovery codes. The user then signs in with their password alone, and apps that require a second factor ask them to set one up. Make sure of who is asking first.',
  errors: [404],
  ...schemas.resetSecondFactors,
  async handle({ params, deps }) {
    await findUser(deps, params.sub);
    await deps.services.secondFactors.resetAll(params.sub);
  },
});

const addRole = defineRoute({
  method: 'put',
  path: '/users/{sub}/roles/{role}',
  operationId: 'addRole',
  tag: 'Users',
  summary: 'Give a user a role (adding one they hold changes nothing)',
  description: 'Tokens already issued keep what they carry; the next sign-in or refresh sees the change. The admin API itself checks the admin role at every request.',
  errors: [404],
  ...schemas.addRole,
  async handle({ params, deps }) {
    const account = await findUser(deps, params.sub);
    return { roles: await deps.services.roles.add(account.email, params.role) };
  },
});

const removeRole = defineRoute({
  method: 'delete',
  path: '/users/{sub}/roles/{role}',
  operationId: 'removeRole',
  tag: 'Users',
  summary: 'Take a role away from a user (taking one they do not hold changes nothing)',
  errors: [404],
  ...schemas.removeRole,
  async handle({ params, deps }) {
    const account = await findUser(deps, params.sub);
    return { roles: (await deps.services.roles.remove(account.email, params.role)).roles };
  },
});

// --- Sessions and grants ---

const sameId = async (clientId: string) => clientId;

const listUserSessions = defineRoute({
  method: 'get',
  path: '/users/{sub}/sessions',
  operationId: 'listSessions',
  tag: 'Sessions and grants',
  summary: 'Where a user is signed in, most recently active first',
  errors: [404],
  ...schemas.listSessions,
  async handle({ params, query, deps }) {
    await findUser(deps, params.sub);
    return pageOf(await listSessions(deps.oidc, params.sub, '', deps.config.ttl.session, sameId), query, sessionView);
  },
});

const endSession = defineRoute({
  method: 'delete',
  path: '/users/{sub}/sessions/{session_id}',
  operationId: 'endSession',
  tag: 'Sessions and grants',
  summary: 'Sign a user out of one session: that browser must sign in again',
  errors: [404],
  ...schemas.endSession,
  async handle({ params, deps }) {
    await findUser(deps, params.sub);
    const session = (await accountSessions(deps.oidc, params.sub)).find(({ id }) => sessionHandle(id) === params.session_id);
    if (!session) throw new AppError('ERR_NOT_FOUND', 'The user has no session with this id');
    await destroySession(deps.provider(), deps.oidc, session, deps.services.backchannelLogout);
  },
});

const endAllSessions = defineRoute({
  method: 'delete',
  path: '/users/{sub}/sessions',
  operationId: 'endAllSessions',
  tag: 'Sessions and grants',
  summary: 'Sign a user out everywhere',
  description: 'Apps keep the tokens they hold; revoke their grants to end those too.',
  errors: [404],
  ...schemas.endAllSessions,
  async handle({ params, deps, note }) {
    await findUser(deps, params.sub);
    // endOtherSessions keeps the one whose id it is given: none here.
    const ended = await endOtherSessions(deps.provider(), deps.oidc, params.sub, '', deps.services.backchannelLogout);
    note({ ended });
    return { ended };
  },
});

const listGrants = defineRoute({
  method: 'get',
  path: '/users/{sub}/grants',
  operationId: 'listGrants',
  tag: 'Sessions and grants',
  summary: 'The apps a user let in, and what each may do',
  errors: [404],
  ...schemas.listGrants,
  async handle({ params, query, deps }) {
    await findUser(deps, params.sub);
    const clientName = (clientId: string) => deps.provider().Client.find(clientId).then((client) => client?.clientName ?? clientId, () => clientId);
    const apps = await listConnectedApps(deps.oidc, params.sub, clientName);
    return pageOf(apps, query, (app) => ({
      client_id: app.clientId,
      client_name: app.name,
      scopes: app.scopes,
      resources: app.resources,
      ...(app.firstGrantedAt && { granted_at: app.firstGrantedAt.toISOString() }),
    }));
  },
});

const revokeGrant = defineRoute({
  method: 'delete',
  path: '/users/{sub}/grants/{client_id}',
  operationId: 'revokeGrant',
  tag: 'Sessions and grants',
  summary: 'Withdraw everything a user granted an app',
  description: 'Its grants, and the refresh tokens, stored access tokens and codes issued under them. JWT access tokens are not stored and run out within their lifetime.',
  errors: [404],
  ...schemas.revokeGrant,
  async handle({ params, deps }) {
    await findUser(deps, params.sub);
    if (!(await revokeApp(deps.provider(), deps.oidc, params.sub, params.client_id))) throw new AppError('ERR_NOT_FOUND', 'The user granted this client nothing');
  },
});

// --- Clients ---

async function findClient(deps: AdminApiDependencies, clientId: string) {
  const configured = deps.services.clients.staticClient(clientId);
  if (configured) return { client_id: clientId, source: 'config' as const, metadata: configured };
  const stored = await deps.services.clients.findMetadata(clientId);
  if (!stored) throw new AppError('ERR_NOT_FOUND', 'There is no client with this client_id');
  return { client_id: clientId, source: 'store' as const, metadata: stored };
}

function refuseConfigured(deps: AdminApiDependencies, clientId: string): void {
  if (deps.services.clients.staticClient(clientId)) {
    throw new AppError('ERR_CONFLICT', 'This client is configured in clients.json; change it there');
  }
}

const listClients = defineRoute({
  method: 'get',
  path: '/clients',
  operationId: 'listClients',
  tag: 'Clients',
  summary: 'Relying parties, machine clients and resource servers\' clients, from clients.json and the store',
  ...schemas.listClients,
  async handle({ query, deps }) {
    const all = (await deps.services.clients.list())
      .filter((client) => (!query.kind || clientKind(client.metadata) === query.kind) && (!query.source || client.source === query.source));
    return pageOf(all, query, clientView);
  },
});

const getClient = defineRoute({
  method: 'get',
  path: '/clients/{client_id}',
  operationId: 'getClient',
  tag: 'Clients',
  summary: 'A client (never its secret)',
  errors: [404],
  ...schemas.getClient,
  handle: async ({ params, deps }) => clientView(await findClient(deps, params.client_id)),
});

const createClient = defineRoute({
  method: 'post',
  path: '/clients',
  operationId: 'createClient',
  tag: 'Clients',
  summary: 'Register a relying party or a machine client; answers with its client secret, once',
  description: [
    '`kind: relying_party`: the authorization code flow with PKCE. `kind: machine`: the client credentials grant for the',
    'given resource servers and scopes, authenticating with `auth` (a generated secret by default). The same rules as',
    '`tessera clients create`. A generated secret is in this answer and nowhere else: Tessera keeps only its hash.',
  ].join(' '),
  status: 201,
  errors: [409, 413, 415],
  ...schemas.createClient,
  async handle({ body, deps, note }) {
    const { clients } = deps.services;
    const created = body.kind === 'relying_party'
      ? await clients.createRelyingParty({
        name: body.name,
        redirectUris: body.redirect_uris,
        postLogoutRedirectUris: body.post_logout_redirect_uris,
        public: body.public,
        native: body.application_type === 'native',
        requirePar: body.require_par,
        requireDpop: body.require_dpop,
        firstParty: body.first_party,
        requireMfa: body.require_mfa,
      })
      : await clients.createMachineClient({
        name: body.name,
        auth: body.auth,
        tlsSubjects: body.tls_subjects,
        certificates: body.certificates,
        ...(body.jwks && { jwks: body.jwks }),
        ...(body.jwks_uri !== undefined && { jwksUri: body.jwks_uri }),
        resources: body.resources,
        requireDpop: body.require_dpop,
        roles: body.roles,
      });
    note({ created_client_id: created.client_id });
    return { ...clientView(await findClient(deps, created.client_id)), ...(created.client_secret && { client_secret: created.client_secret }) };
  },
});

const updateClient = defineRoute({
  method: 'patch',
  path: '/clients/{client_id}',
  operationId: 'updateClient',
  tag: 'Clients',
  summary: 'Rename a relying party or replace its redirect URIs',
  description: 'The rules of creating one apply (Tessera\'s, then oidc-provider\'s), so what is stored always works; a refusal names the field. Sign-ins already under way with a removed redirect URI fail at the callback.',
  errors: [404, 409, 413, 415],
  ...schemas.updateClient,
  async handle({ params, body, deps }) {
    refuseConfigured(deps, params.client_id);
    await deps.services.clients.updateRelyingParty(params.client_id, {
      ...(body.client_name !== undefined && { name: body.client_name }),
      ...(body.redirect_uris !== undefined && { redirectUris: body.redirect_uris }),
      ...(body.post_logout_redirect_uris !== undefined && { postLogoutRedirectUris: body.post_logout_redirect_uris }),
    });
    await deps.refresh();
    return clientView(await findClient(deps, params.client_id));
  },
});

const rotateClientSecret = defineRoute({
  method: 'post',
  path: '/clients/{client_id}/secret',
  operationId: 'rotateClientSecret',
  tag: 'Clients',
  summary: 'Give a client_secret client a new secret; answers with it, once',
  description: 'The old secret stops working at once (give the app its new one first, or expect its token requests to fail until then). Tessera keeps only a hash of the new one.',
  errors: [404, 409],
  ...schemas.rotateClientSecret,
  async handle({ params, deps }) {
    refuseConfigured(deps, params.client_id);
    const { client_secret } = await deps.services.clients.rotateSecret(params.client_id);
    await deps.refresh();
    return { client_id: params.client_id, client_secret };
  },
});

const deleteClient = defineRoute({
  method: 'delete',
  path: '/clients/{client_id}',
  operationId: 'deleteClient',
  tag: 'Clients',
  summary: 'Delete a client kept in the store',
  errors: [404, 409],
  ...schemas.deleteClient,
  async handle({ params, deps }) {
    refuseConfigured(deps, params.client_id);
    if (!(await deps.services.clients.delete(params.client_id))) throw new AppError('ERR_NOT_FOUND', 'There is no client with this client_id');
  },
});

async function credentialsOf(deps: AdminApiDependencies, clientId: string) {
  const view = clientView(await findClient(deps, clientId));
  return { ...(view.thumbprints && { thumbprints: view.thumbprints }), ...(view.tls_subjects && { tls_subjects: view.tls_subjects }) };
}

const addCertificate = defineRoute({
  method: 'post',
  path: '/clients/{client_id}/certificates',
  operationId: 'addCertificate',
  tag: 'Clients',
  summary: 'Register another certificate for a self_signed_tls_client_auth client (for rotation)',
  status: 201,
  errors: [404, 409, 413, 415],
  ...schemas.addCertificate,
  async handle({ params, body, deps, note }) {
    refuseConfigured(deps, params.client_id);
    const { thumbprint } = await deps.services.clients.addCertificate(params.client_id, body.certificate);
    note({ thumbprint });
    await deps.refresh();
    return { thumbprint, ...(await credentialsOf(deps, params.client_id)) };
  },
});

const removeCertificate = defineRoute({
  method: 'delete',
  path: '/clients/{client_id}/certificates/{thumbprint}',
  operationId: 'removeCertificate',
  tag: 'Clients',
  summary: 'Remove a certificate by its x5t#S256 thumbprint (not the last one)',
  errors: [404, 409],
  ...schemas.removeCertificate,
  async handle({ params, deps }) {
    refuseConfigured(deps, params.client_id);
    await deps.services.clients.removeCertificate(params.client_id, params.thumbprint);
  },
});

const addTlsSubject = defineRoute({
  method: 'post',
  path: '/clients/{client_id}/tls-subjects',
  operationId: 'addTlsSubject',
  tag: 'Clients',
  summary: 'Register another subject DN or SAN for a tls_client_auth client (for rotation)',
  status: 201,
  errors: [404, 409, 413, 415],
  ...schemas.addTlsSubject,
  async handle({ params, body, deps }) {
    refuseConfigured(deps, params.client_id);
    await deps.services.clients.addTlsSubject(params.client_id, body);
    await deps.refresh();
    return credentialsOf(deps, params.client_id);
  },
});

const removeTlsSubject = defineRoute({
  method: 'delete',
  path: '/clients/{client_id}/tls-subjects',
  operationId: 'removeTlsSubject',
  tag: 'Clients',
  summary: 'Remove a subject DN or SAN (not the last one), named by the type and value query parameters',
  errors: [404, 409],
  ...schemas.removeTlsSubject,
  async handle({ params, query, deps }) {
    refuseConfigured(deps, params.client_id);
    await deps.services.clients.removeTlsSubject(params.client_id, query);
  },
});

// --- Resource servers ---

async function allResources(deps: AdminApiDependencies) {
  const { resources, clients } = deps.services;
  const introspectors = await clients.introspectionClients();
  const all = [...resources.builtIns().map((resource) => ({ ...resource, source: 'builtin' as const })), ...await resources.list()];
  return all.map((resource) => resourceView(resource, introspectors.get(resource.audience)));
}

const listResources = defineRoute({
  method: 'get',
  path: '/resources',
  operationId: 'listResources',
  tag: 'Resource servers',
  summary: 'Resource servers: built in (the admin API), from resources.json, and from the store',
  ...schemas.listResources,
  handle: async ({ query, deps }) => pageOf(await allResources(deps), query, (resource) => resource),
});

const getResource = defineRoute({
  method: 'get',
  path: '/resources/{audience}',
  operationId: 'getResource',
  tag: 'Resource servers',
  summary: 'A resource server, by its audience (percent-encoded)',
  errors: [404],
  ...schemas.getResource,
  async handle({ params, deps }) {
    const found = (await allResources(deps)).find((resource) => resource.audience === params.audience);
    if (!found) throw new AppError('ERR_NOT_FOUND', 'There is no resource server with this audience');
    return found;
  },
});

const createResource = defineRoute({
  method: 'post',
  path: '/resources',
  operationId: 'createResource',
  tag: 'Resource servers',
  summary: 'Register a resource server; answers with its introspection client\'s secret, once',
  status: 201,
  errors: [409, 413, 415],
  ...schemas.createResource,
  async handle({ body, deps }) {
    const created = await deps.services.resources.create({
      audience: body.audience,
      scopes: body.scopes,
      name: body.name,
      format: body.format,
      ttlSeconds: body.ttl,
      scopeRoles: body.scope_roles,
      clients: body.clients,
      signingAlg: body.signing_alg,
    });
    return { ...resourceView({ ...created, source: 'store' }, created.client.client_id), client_secret: created.client.client_secret! };
  },
});

const deleteResource = defineRoute({
  method: 'delete',
  path: '/resources/{audience}',
  operationId: 'deleteResource',
  tag: 'Resource servers',
  summary: 'Delete a resource server kept in the store, and its introspection client',
  description: 'Clients allowed it keep the allowance, and get no tokens for it unless it is created again.',
  errors: [404, 409],
  ...schemas.deleteResource,
  async handle({ params, deps }) {
    const existing = (await allResources(deps)).find((resource) => resource.audience === params.audience);
    if (existing?.source === 'builtin') throw new AppError('ERR_CONFLICT', 'This resource server is built into Tessera');
    if (existing?.source === 'config') throw new AppError('ERR_CONFLICT', 'This resource server is configured in resources.json; change it there');
    if (!(await deps.services.resources.delete(params.audience))) throw new AppError('ERR_NOT_FOUND', 'There is no resource server with this audience');
  },
});

// --- Upstream identity providers ---

async function allUpstreams(deps: AdminApiDependencies) {
  const { upstreams } = deps.services;
  return (await upstreams.list()).map((upstream) => upstreamView(upstream, upstreams.redirectUri(upstream.id)));
}

const listUpstreams = defineRoute({
  method: 'get',
  path: '/upstreams',
  operationId: 'listUpstreams',
  tag: 'Upstream providers',
  summary: 'Upstream identity providers people may sign in with: from upstreams.json and from the store',
  ...schemas.listUpstreams,
  handle: async ({ query, deps }) => pageOf(await allUpstreams(deps), query, (upstream) => upstream),
});

const getUpstream = defineRoute({
  method: 'get',
  path: '/upstreams/{id}',
  operationId: 'getUpstream',
  tag: 'Upstream providers',
  summary: 'An upstream identity provider (never its client secret)',
  errors: [404],
  ...schemas.getUpstream,
  async handle({ params, deps }) {
    const found = (await allUpstreams(deps)).find((upstream) => upstream.id === params.id);
    if (!found) throw new AppError('ERR_NOT_FOUND', 'There is no upstream provider with this id');
    return found;
  },
});

const createUpstream = defineRoute({
  method: 'post',
  path: '/upstreams',
  operationId: 'createUpstream',
  tag: 'Upstream providers',
  summary: 'Add an upstream identity provider; answers with the redirect URI to register there',
  status: 201,
  errors: [409, 413, 415],
  ...schemas.createUpstream,
  async handle({ body, deps }) {
    const { upstream, redirectUri } = await deps.services.upstreams.create({
      id: body.id,
      name: body.name,
      preset: body.preset,
      issuer: body.issuer,
      clientId: body.client_id,
      clientSecret: body.client_secret,
      scopes: body.scopes,
      trustEmail: body.trust_email,
      authorizationEndpoint: body.authorization_endpoint,
      tokenEndpoint: body.token_endpoint,
      userEndpoint: body.user_endpoint,
      emailsEndpoint: body.emails_endpoint,
    });
    return upstreamView(upstream, redirectUri);
  },
});

const deleteUpstream = defineRoute({
  method: 'delete',
  path: '/upstreams/{id}',
  operationId: 'deleteUpstream',
  tag: 'Upstream providers',
  summary: 'Remove an upstream provider kept in the store',
  description: 'Identities linked through it stay on their accounts but cannot sign in until an upstream with this id exists again.',
  errors: [404, 409],
  ...schemas.deleteUpstream,
  async handle({ params, deps }) {
    if (deps.services.upstreams.isStatic(params.id)) throw new AppError('ERR_CONFLICT', 'This upstream provider is configured in upstreams.json; change it there');
    if (!(await deps.services.upstreams.delete(params.id))) throw new AppError('ERR_NOT_FOUND', 'There is no upstream provider with this id');
  },
});

// --- Keys ---

const listKeys = defineRoute({
  method: 'get',
  path: '/keys',
  operationId: 'listKeys',
  tag: 'Keys',
  summary: 'Signing and cookie keys with their status (never their private parts)',
  ...schemas.listKeys,
  handle: async ({ query, deps }) => pageOf(await deps.services.keys.list(), query, (key) => key),
});

const rotateKeys = defineRoute({
  method: 'post',
  path: '/keys/rotate',
  operationId: 'rotateKeys',
  tag: 'Keys',
  summary: 'Sign with new keys; the old ones stay published until their tokens expire',
  description: 'This instance switches at once; others within STORE_POLL_SECONDS.',
  ...schemas.rotateKeys,
  async handle({ deps, note }) {
    const { keys } = deps.services;
    const before = (await keys.list()).filter((key) => key.use === 'sig' && key.status === 'current');
    await keys.rotate();
    await keys.ensure();
    const after = await keys.list();
    const current = after.filter((key) => key.use === 'sig' && key.status === 'current').map((key) => key.kid);
    const retired = before.filter((old) => after.some((key) => key.kid === old.kid && key.status === 'retired')).map((key) => key.kid);
    note({ current: current.join(' ') });
    return { current, retired };
  },
});

// --- Audit events ---

const listAuditEvents = defineRoute({
  method: 'get',
  path: '/audit-events',
  operationId: 'listAuditEvents',
  tag: 'Audit events',
  summary: 'Security events, newest first, by account, client, type and time',
  errors: [503],
  ...schemas.listAuditEvents,
  async handle({ query, deps }) {
    if (!deps.audit) throw new AppError('ERR_FEATURE_UNAVAILABLE', 'The audit trail is not available in this instance');
    const page = await deps.audit.query({
      limit: query.limit,
      ...(query.cursor !== undefined && { before: query.cursor }),
      ...(query.sub !== undefined && { sub: query.sub }),
      ...(query.client_id !== undefined && { clientId: query.client_id }),
      ...(query.type !== undefined && { type: query.type }),
      ...(query.since !== undefined && { since: new Date(query.since) }),
      ...(query.until !== undefined && { until: new Date(query.until) }),
    });
    return { items: page.events.map(auditEventView), ...(page.next && { next_cursor: page.next }) };
  },
});

export const ADMIN_ROUTES: readonly Route[] = [
  listUsers, countUsers, createUser, importUsers, getUser, updateUser, unlockUser, resetSecondFactors, addRole, removeRole,
  listUserSessions, endAllSessions, endSession, listGrants, revokeGrant,
  listClients, createClient, getClient, updateClient, rotateClientSecret, deleteClient, addCertificate, removeCertificate, addTlsSubject, removeTlsSubject,
  listResources, createResource, getResource, deleteResource,
  listUpstreams, createUpstream, getUpstream, deleteUpstream,
  listKeys, rotateKeys,
  listAuditEvents,
];
