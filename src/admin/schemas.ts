/**
 * The admin API's schemas: one set per endpoint (path parameters, query, body, response). The
 * router validates every request against them at the boundary and every answer on the way out
 * (which also strips whatever a schema does not name, so nothing unlisted, such as a secret, can
 * leave); the OpenAPI document is generated from the same objects (openapi.ts).
 *
 * Request objects are strict: an unknown field is refused, not ignored. Names on the wire are
 * snake_case, like everything else Tessera prints.
 */
import { z } from 'zod';

import { ACCESS_TOKEN_SIGNING_ALGS } from '../config.ts';
import { SECURITY_EVENT_TYPES } from '../domain/events.ts';

// --- Building blocks ---

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export const MAX_PAGE = 200;
export const DEFAULT_PAGE = 50;

const limit = z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE)
  .meta({ description: `Page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})` });
const cursor = z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/, 'must be the next_cursor of an earlier page').optional()
  .meta({ description: 'The next_cursor of the previous page' });
const pageQuery = { limit, cursor };

/** A page of a list: `next_cursor` is present when there may be more. */
function page<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next_cursor: z.string().optional() });
}

const timestamp = z.iso.datetime({ offset: true });
const role = z.string().regex(ROLE_NAME, 'must be a role name (letters, digits and _ . : -, at most 64)');
const scope = z.string().regex(SCOPE_TOKEN, 'must be a scope token').max(128);
const subject = z.string().regex(/^[A-Za-z0-9._~:@-]{1,128}$/, 'must be a subject identifier').meta({ description: 'The account\'s subject identifier (sub)' });
const clientId = z.string().regex(/^[\x21-\x7E]{1,255}$/, 'must be a client_id').meta({ description: 'The client_id' });
const absoluteUri = z.string().max(2048).refine((value) => URL.canParse(value), 'must be an absolute URI');
const profileName = z.string().trim().max(100, 'names are limited to 100 characters');
const displayName = z.string().trim().min(1, 'a name is required').max(200);
const pem = z.string().max(16_384).regex(/-----BEGIN CERTIFICATE-----/, 'must be a PEM certificate');

// --- Errors ---

export const errorBody = z.object({
  error: z.string().meta({ description: 'A stable code: invalid_request, invalid_token, insufficient_scope, not_found, conflict, ...' }),
  error_description: z.string(),
  fields: z.record(z.string(), z.string()).optional().meta({ description: 'Per field, what is wrong with it' }),
}).meta({ id: 'Error' });

// --- Users ---

const userParams = z.strictObject({ sub: subject });

export const user = z.object({
  sub: z.string(),
  email: z.string(),
  email_verified: z.boolean(),
  name: z.string().optional(),
  given_name: z.string().optional(),
  family_name: z.string().optional(),
  disabled: z.boolean(),
  roles: z.array(z.string()),
  /** Present while sign-in is blocked after failed attempts. */
  locked_until: timestamp.optional(),
  /** Whether signing in with a password asks for a second factor. */
  second_factor: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: 'User' });

export const identity = z.object({
  upstream: z.string().meta({ description: 'The upstream provider\'s id' }),
  subject: z.string().meta({ description: 'The person\'s subject identifier at the upstream' }),
  email: z.string().optional(),
  linked_at: timestamp,
}).meta({ id: 'Identity' });

export const userDetails = user.extend({
  password: z.boolean().meta({ description: 'Whether the account has a password (accounts born at an upstream provider have none until one is set)' }),
  identities: z.array(identity).meta({ description: 'Identities at upstream providers that sign in to this account' }),
  second_factors: z.object({
    totp: z.boolean(),
    passkeys: z.number().int(),
    email_codes: z.boolean(),
    recovery_codes_left: z.number().int(),
  }),
}).meta({ id: 'UserDetails' });

export const listUsers = {
  query: z.strictObject({
    ...pageQuery,
    email: z.string().max(254).optional().meta({ description: 'Exactly this address (after normalisation)' }),
    email_prefix: z.string().min(1).max(254).optional().meta({ description: 'The start of the email address, case-insensitive; the list is then in email order' }),
    q: z.string().min(1).max(254).optional().meta({ description: 'Part of the email address or of the name, case-insensitive' }),
    role: role.optional().meta({ description: 'Only holders of this role' }),
    status: z.enum(['active', 'disabled', 'locked']).optional(),
  }),
  response: page(user),
};

export const getUser = { params: userParams, response: userDetails };

export const countUsers = {
  response: z.object({
    total: z.number().int().meta({ description: 'Every account (on MongoDB the collection\'s own estimate, which is exact after a clean shutdown)' }),
    locked: z.number().int().meta({ description: 'Accounts locked now after failed sign-ins (disabled ones not counted)' }),
  }),
};

export const createUser = {
  body: z.strictObject({
    email: z.string().max(254),
    password: z.string().max(1024).optional().meta({
      description: 'Leave it out to mail the person a link to choose their own (a password reset link)',
    }),
    name: profileName.optional(),
    given_name: profileName.optional(),
    family_name: profileName.optional(),
    roles: z.array(role).max(100).optional(),
  }),
  response: user.extend({
    password_link_sent: z.boolean().meta({ description: 'A link to choose a password was mailed (no password was given)' }),
  }),
};

/** Records per import request: a batch of them fits the admin API's 64 KB body even with bcrypt hashes. */
export const MAX_IMPORT_RECORDS = 200;

const importLine = z.number().int().meta({ description: 'The record\'s position in `records`, from 1' });

export const importUsers = {
  body: z.strictObject({
    records: z.array(z.record(z.string(), z.unknown())).min(1).max(MAX_IMPORT_RECORDS).meta({
      description: 'Accounts in the fields of `tessera users import` (email, name, given_name, family_name, email_verified, roles, created_at, external_id, password_hash, password_salt, password_salt_position); each is checked on its own',
    }),
    dry_run: z.boolean().optional().meta({ description: 'Check and report, writing nothing' }),
    allow_weak_hashes: z.boolean().optional().meta({ description: 'Accept sha256:, sha1: and md5: digests' }),
  }),
  response: z.object({
    dry_run: z.boolean(),
    imported: z.number().int(),
    updated: z.number().int(),
    skipped: z.number().int(),
    errors: z.array(z.object({ line: importLine, reason: z.string() })),
    skipped_records: z.array(z.object({ line: importLine, email: z.string(), reason: z.string() })),
    weak_hashes: z.array(z.object({ line: importLine, email: z.string(), algorithm: z.string() })),
    notes: z.array(z.object({ line: importLine, note: z.string() })),
    without_password: z.array(z.string()).meta({ description: 'Emails of accounts imported without a password' }),
  }),
};

export const updateUser = {
  params: userParams,
  body: z.strictObject({
    disabled: z.boolean().optional().meta({ description: 'A disabled account cannot sign in, and its refresh tokens stop working' }),
    name: profileName.nullable().optional().meta({ description: 'null or "" clears it' }),
    given_name: profileName.nullable().optional(),
    family_name: profileName.nullable().optional(),
  }).refine((body) => Object.keys(body).length > 0, 'name at least one field to change'),
  response: userDetails,
};

export const unlockUser = { params: userParams };

export const resetSecondFactors = { params: userParams };

const roleParams = z.strictObject({ sub: subject, role });
const rolesBody = z.object({ roles: z.array(z.string()) });
export const addRole = { params: roleParams, response: rolesBody };
export const removeRole = { params: roleParams, response: rolesBody };

// --- Sessions and grants of a user ---

export const session = z.object({
  id: z.string().meta({ description: 'A handle for this session (not the session cookie\'s value)' }),
  signed_in_at: timestamp.optional(),
  last_active_at: timestamp.optional(),
  user_agent: z.string().optional(),
  device: z.string().optional(),
  clients: z.array(z.string()).meta({ description: 'client_ids signed in to in this session' }),
}).meta({ id: 'Session' });

export const listSessions = { params: userParams, query: z.strictObject(pageQuery), response: page(session) };
export const endSession = { params: z.strictObject({ sub: subject, session_id: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a session id from the list') }) };
export const endAllSessions = { params: userParams, response: z.object({ ended: z.number().int() }) };

export const grant = z.object({
  client_id: z.string(),
  client_name: z.string(),
  scopes: z.array(z.string()).meta({ description: 'OpenID Connect scopes granted' }),
  resources: z.record(z.string(), z.array(z.string())).meta({ description: 'API scopes granted, per resource server audience' }),
  granted_at: timestamp.optional(),
}).meta({ id: 'Grant' });

export const listGrants = { params: userParams, query: z.strictObject(pageQuery), response: page(grant) };
export const revokeGrant = { params: z.strictObject({ sub: subject, client_id: clientId }) };

// --- Clients ---

const tlsSubject = z.strictObject({
  type: z.enum(['subject_dn', 'san_dns', 'san_uri', 'san_ip', 'san_email']),
  value: z.string().min(1).max(1024),
});

export const client = z.object({
  client_id: z.string(),
  client_name: z.string().optional(),
  kind: z.enum(['relying_party', 'machine', 'resource_server']),
  source: z.enum(['config', 'store']),
  token_endpoint_auth_method: z.string(),
  grant_types: z.array(z.string()),
  redirect_uris: z.array(z.string()).optional(),
  post_logout_redirect_uris: z.array(z.string()).optional(),
  application_type: z.enum(['web', 'native']).optional(),
  resources: z.record(z.string(), z.array(z.string())).optional().meta({ description: 'Machine client: scopes it may get, per resource server audience' }),
  roles: z.array(z.string()).optional(),
  resource_server: z.string().optional().meta({ description: 'The audience whose tokens this client introspects and revokes' }),
  thumbprints: z.array(z.string()).optional().meta({ description: 'self_signed_tls_client_auth: x5t#S256 of its certificates' }),
  tls_subjects: z.array(z.object({ type: z.string(), value: z.string() })).optional(),
  jwks_uri: z.string().optional(),
  require_par: z.boolean().optional(),
  require_dpop: z.boolean().optional(),
  certificate_bound: z.boolean().optional(),
  first_party: z.boolean().optional(),
  require_mfa: z.boolean().optional(),
  registered: z.enum(['dynamic', 'metadata_document']).optional().meta({ description: 'The client registered itself (RFC 7591), or is known by its metadata document: not one the operator created' }),
}).meta({ id: 'Client' });

const clientParams = z.strictObject({ client_id: clientId });

export const listClients = {
  query: z.strictObject({
    ...pageQuery,
    kind: z.enum(['relying_party', 'machine', 'resource_server']).optional(),
    source: z.enum(['config', 'store']).optional(),
  }),
  response: page(client),
};

export const getClient = { params: clientParams, response: client };

const relyingPartyBody = z.strictObject({
  kind: z.literal('relying_party'),
  name: displayName,
  redirect_uris: z.array(z.string().max(2048)).min(1, 'at least one redirect URI is required').max(20),
  post_logout_redirect_uris: z.array(z.string().max(2048)).max(20).optional(),
  public: z.boolean().optional().meta({ description: 'A public client (a single-page app): no secret, PKCE alone' }),
  application_type: z.enum(['web', 'native']).optional().meta({ description: 'native (RFC 8252): public, loopback redirect URIs match any port, private-use schemes (com.example.app:/cb) allowed. Default web' }),
  require_par: z.boolean().optional(),
  require_dpop: z.boolean().optional(),
  first_party: z.boolean().optional().meta({ description: 'One of the operator\'s own apps: never shows the consent page, may register people with POST /api/accounts' }),
  require_mfa: z.boolean().optional(),
});

const machineBody = z.strictObject({
  kind: z.literal('machine'),
  name: displayName,
  auth: z.enum(['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt', 'client_secret_basic']).default('client_secret_basic'),
  tls_subjects: z.array(tlsSubject).max(20).optional().meta({ description: 'tls_client_auth: the subjects its CA-issued certificates carry' }),
  certificates: z.array(pem).max(20).optional().meta({ description: 'self_signed_tls_client_auth: PEM certificates it may present' }),
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional().meta({ description: 'private_key_jwt: its public keys' }),
  jwks_uri: absoluteUri.optional(),
  resources: z.record(absoluteUri, z.array(scope).min(1).max(100)).meta({ description: 'Scopes it may get, per resource server audience' }),
  roles: z.array(role).max(100).optional(),
  require_dpop: z.boolean().optional(),
});

export const createClient = {
  body: z.discriminatedUnion('kind', [relyingPartyBody, machineBody]),
  response: client.extend({
    client_secret: z.string().optional().meta({ description: 'Shown this once: Tessera keeps only a hash' }),
  }),
};

export const deleteClient = { params: clientParams };

export const updateClient = {
  params: clientParams,
  body: z.strictObject({
    client_name: displayName.optional(),
    redirect_uris: z.array(z.string().max(2048)).min(1, 'at least one redirect URI is required').max(20).optional().meta({ description: 'Replaces the list' }),
    post_logout_redirect_uris: z.array(z.string().max(2048)).max(20).optional().meta({ description: 'Replaces the list; [] clears it' }),
  }).refine((body) => Object.keys(body).length > 0, 'name at least one field to change'),
  response: client,
};

export const rotateClientSecret = {
  params: clientParams,
  response: z.object({
    client_id: z.string(),
    client_secret: z.string().meta({ description: 'Shown this once: Tessera keeps only a hash. The old secret stops working at once' }),
  }),
};

const credentials = z.object({
  thumbprints: z.array(z.string()).optional(),
  tls_subjects: z.array(z.object({ type: z.string(), value: z.string() })).optional(),
});

export const addCertificate = {
  params: clientParams,
  body: z.strictObject({ certificate: pem }),
  response: credentials.extend({ thumbprint: z.string() }),
};

export const removeCertificate = {
  params: z.strictObject({ client_id: clientId, thumbprint: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be an x5t#S256 thumbprint') }),
};

export const addTlsSubject = { params: clientParams, body: tlsSubject, response: credentials };
export const removeTlsSubject = { params: clientParams, query: tlsSubject };

// --- Resource servers ---

export const resource = z.object({
  audience: z.string(),
  name: z.string().optional(),
  scopes: z.array(z.string()),
  format: z.enum(['jwt', 'opaque']),
  ttl: z.number().int(),
  scope_roles: z.record(z.string(), z.array(z.string())).optional(),
  clients: z.array(z.string()).optional().meta({ description: 'The only clients that may ask for it in the code flow; absent, any client may, with the person\'s consent' }),
  signing_alg: z.enum(ACCESS_TOKEN_SIGNING_ALGS).optional().meta({ description: 'The JWS algorithm of its JWT access tokens' }),
  source: z.enum(['builtin', 'config', 'store']),
  client_id: z.string().optional().meta({ description: 'Its client for introspection and revocation' }),
}).meta({ id: 'Resource' });

const audienceParams = z.strictObject({ audience: absoluteUri.meta({ description: 'The audience URI, percent-encoded as one path segment' }) });

export const listResources = { query: z.strictObject(pageQuery), response: page(resource) };
export const getResource = { params: audienceParams, response: resource };

export const createResource = {
  body: z.strictObject({
    audience: absoluteUri,
    scopes: z.array(scope).min(1).max(100),
    name: z.string().trim().min(1).max(200).optional(),
    format: z.enum(['jwt', 'opaque']).optional(),
    ttl: z.number().int().min(1).max(86_400).optional(),
    scope_roles: z.record(scope, z.array(role).min(1).max(100)).optional(),
    clients: z.array(clientId).min(1).max(100).optional(),
    signing_alg: z.enum(ACCESS_TOKEN_SIGNING_ALGS).optional().meta({ description: 'The JWS algorithm of its JWT access tokens (default RS256)' }),
  }),
  response: resource.extend({
    client_secret: z.string().meta({ description: 'Its introspection client\'s secret, shown this once' }),
  }),
};

export const deleteResource = { params: audienceParams };

// --- Upstream identity providers ---

export const upstream = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['oidc', 'github']),
  preset: z.enum(['google', 'microsoft', 'github', 'gitlab']).optional(),
  issuer: z.string().optional(),
  authorization_endpoint: z.string().optional(),
  token_endpoint: z.string().optional(),
  user_endpoint: z.string().optional(),
  emails_endpoint: z.string().optional(),
  client_id: z.string(),
  scopes: z.array(z.string()),
  trust_email: z.boolean(),
  source: z.enum(['config', 'store']),
  redirect_uri: z.string().meta({ description: 'The redirect URI to register at the upstream' }),
}).meta({ id: 'Upstream' });

const upstreamParams = z.strictObject({ id: z.string().regex(/^[a-z0-9-]{1,40}$/, 'must be an upstream id') });

export const listUpstreams = { query: z.strictObject(pageQuery), response: page(upstream) };
export const getUpstream = { params: upstreamParams, response: upstream };
export const createUpstream = {
  body: z.strictObject({
    id: z.string().max(40),
    name: z.string().trim().min(1).max(60).optional(),
    preset: z.enum(['google', 'microsoft', 'github', 'gitlab']).optional(),
    issuer: z.string().max(2048).optional(),
    client_id: z.string().min(1).max(512),
    client_secret: z.string().min(1).max(4096).meta({ description: 'Kept sealed with TESSERA_SECRET; never shown again' }),
    scopes: z.array(scope).min(1).max(50).optional(),
    trust_email: z.boolean().optional(),
    authorization_endpoint: z.string().max(2048).optional(),
    token_endpoint: z.string().max(2048).optional(),
    user_endpoint: z.string().max(2048).optional(),
    emails_endpoint: z.string().max(2048).optional(),
  }),
  response: upstream,
};
export const deleteUpstream = { params: upstreamParams };

// --- Keys ---

export const key = z.object({
  kid: z.string(),
  alg: z.string(),
  use: z.string(),
  status: z.enum(['current', 'retired']),
  created_at: timestamp,
  retired_at: timestamp.optional(),
  expires_at: timestamp.optional(),
}).meta({ id: 'Key' });

export const listKeys = { query: z.strictObject(pageQuery), response: page(key) };
export const rotateKeys = {
  response: z.object({
    current: z.array(z.string()).meta({ description: 'kids now signing' }),
    retired: z.array(z.string()).meta({ description: 'kids retired, published until their tokens expire' }),
  }),
};

// --- Audit events ---

export const auditEvent = z.object({
  id: z.string(),
  type: z.string(),
  at: timestamp,
  sub: z.string().optional(),
  client_id: z.string().optional(),
  ip: z.string().optional(),
  request_id: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
}).meta({ id: 'AuditEvent' });

const eventType = z.enum(SECURITY_EVENT_TYPES);

export const listAuditEvents = {
  query: z.strictObject({
    limit,
    cursor,
    sub: subject.optional().meta({ description: 'Events about this account' }),
    client_id: clientId.optional().meta({ description: 'Events involving this client' }),
    type: z.union([eventType, z.array(eventType).max(SECURITY_EVENT_TYPES.length)]).optional()
      .meta({ description: 'One type, or several (repeat the parameter): any of them' }),
    since: timestamp.optional().meta({ description: 'At or after this time' }),
    until: timestamp.optional().meta({ description: 'Before this time' }),
  }),
  response: page(auditEvent),
};
