/**
 * `tessera clients ...`: relying parties and machine clients kept in the store. Secrets are generated
 * by ClientService, shown once by `create`, and never again (`list` shows metadata with secrets
 * redacted). Certificates and TLS subjects of mTLS clients are rotated with `clients certs`.
 */
import path from 'node:path';

import { TLS_SUBJECT_METADATA, type TlsSubject } from '../domain/certificates.ts';
import { FIRST_USED_AT, MACHINE_AUTH_METHODS, type CreatedClient, type MachineAuthMethod } from '../domain/clients.ts';
import { registeredKind } from '../domain/registered-clients.ts';
import { AppError } from '../errors.ts';
import { certsGroup } from './client-certs.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { readCertificateFile, readJwksFile, TLS_SUBJECT_OPTIONS, TLS_SUBJECT_SPECS, tlsSubjectsFrom } from './credentials.ts';
import { printJson, printLines, printTable } from './output.ts';

const GRANTS = ['authorization_code', 'device_code', 'client_credentials'] as const;

/** Options that only make sense for one kind of client; naming the other kind's is a usage error. */
const RELYING_PARTY_ONLY = ['redirect-uri', 'post-logout-redirect-uri', 'public', 'native', 'require-par', 'first-party', 'require-mfa'] as const;
/** A device signs people in without redirects: these relying-party options mean nothing for it. */
const DEVICE_EXCLUDED = ['redirect-uri', 'post-logout-redirect-uri', 'native', 'require-par'] as const;
/** Back-channel logout is about people's sessions: machine clients have none. */
const LOGOUT_OPTIONS = ['backchannel-logout-uri', 'backchannel-logout-session-required'] as const;
const MACHINE_ONLY = ['auth', 'cert', 'jwks', 'jwks-uri', 'resource', 'scope', 'role', ...Object.keys(TLS_SUBJECT_OPTIONS) as (keyof typeof TLS_SUBJECT_OPTIONS)[]] as const;

/** Which credential options go with which --auth method. */
const CREDENTIAL_OPTIONS: Record<string, MachineAuthMethod> = {
  cert: 'self_signed_tls_client_auth',
  jwks: 'private_key_jwt',
  'jwks-uri': 'private_key_jwt',
  ...Object.fromEntries(Object.keys(TLS_SUBJECT_OPTIONS).map((option) => [option, 'tls_client_auth' as const])),
};

function given(value: unknown): boolean {
  return Array.isArray(value) ? value.length > 0 : value !== undefined && value !== false;
}

const create = defineCommand({
  summary: 'Register a relying party or a machine client; prints its client secret once',
  description: [
    'Register a relying party (authorization code flow with PKCE; the default, or --grant authorization_code),',
    'or a machine client that gets tokens for itself (--grant client_credentials) for the given resource',
    'servers and scopes. A machine client authenticates with --auth:',
    '  tls_client_auth              a CA-issued certificate (MTLS_CA) with a registered subject (--tls-subject-dn, --tls-san-*)',
    '  self_signed_tls_client_auth  a registered certificate (--cert PATH.pem)',
    '  private_key_jwt              a JWT signed with a registered key (--jwks PATH.json or --jwks-uri URL)',
    '  client_secret_basic          a 256-bit secret (the default)',
    'A native app (--native, RFC 8252) is public and may redirect to a loopback address on any port',
    '(register http://127.0.0.1/callback; the app may listen on any port) or to a private-use scheme named',
    'after a reversed domain (com.example.app:/callback). Only native apps may use private-use schemes.',
    'Every --scope applies to every --resource that offers it; a scope no given resource offers is refused.',
    'A generated secret is printed once: Tessera keeps only its hash.',
  ].join('\n'),
  forms: [
    'clients create --name NAME --redirect-uri URI [options]',
    'clients create --name NAME --grant device_code [--public] [options]',
    'clients create --name NAME --grant client_credentials [--auth METHOD ...] --resource URI --scope S [options]',
  ],
  options: {
    name: { type: 'string', required: true, placeholder: 'NAME', description: 'Name shown to people on the consent page and in listings' },
    grant: { type: 'string', placeholder: 'GRANT', description: 'authorization_code (a relying party, the default), device_code (a device that signs people in with a code, RFC 8628) or client_credentials (a machine client)' },
    'redirect-uri': {
      type: 'string',
      multiple: true,
      placeholder: 'URI',
      description: 'Relying party (needs at least one): where authorization responses go; https, or http on a loopback address (native apps: also com.example.app:/path)',
    },
    'post-logout-redirect-uri': { type: 'string', multiple: true, placeholder: 'URI', description: 'Relying party: where to send people after logout' },
    public: { type: 'boolean', description: 'Relying party: a public client (a single-page app): no secret, PKCE alone' },
    native: { type: 'boolean', description: 'Relying party: a native app (application_type native): public, loopback redirects on any port, private-use schemes' },
    'require-par': { type: 'boolean', description: 'Relying party: authorization requests must be pushed first (RFC 9126)' },
    'first-party': { type: 'boolean', description: 'Relying party: one of your own apps: no consent page, and may register people with POST /api/accounts' },
    'require-mfa': { type: 'boolean', description: 'Relying party: every sign-in needs a second factor; people without one set it up first' },
    auth: { type: 'string', placeholder: 'METHOD', description: `Machine client: ${MACHINE_AUTH_METHODS.join(', ')} (default client_secret_basic)` },
    ...TLS_SUBJECT_SPECS,
    cert: { type: 'string', multiple: true, placeholder: 'PATH.pem', description: 'self_signed_tls_client_auth: a certificate the client presents' },
    jwks: { type: 'string', placeholder: 'PATH.json', description: 'private_key_jwt: the client\'s public keys, a JWK set file' },
    'jwks-uri': { type: 'string', placeholder: 'URL', description: 'private_key_jwt: where the client publishes its public keys (https)' },
    resource: { type: 'string', multiple: true, placeholder: 'URI', description: 'Machine client: a resource server (audience) it may get tokens for' },
    scope: { type: 'string', multiple: true, placeholder: 'S', description: 'Machine client: a scope it may ask for' },
    role: { type: 'string', multiple: true, placeholder: 'ROLE', description: 'Machine client: a role it holds, for scopes a resource limits to roles' },
    'require-dpop': { type: 'boolean', description: 'Access tokens must be DPoP-bound (RFC 9449)' },
    'backchannel-logout-uri': { type: 'string', placeholder: 'URI', description: 'Relying party or device: where Tessera posts a logout token when one of its sessions ends (OIDC Back-Channel Logout)' },
    'backchannel-logout-session-required': { type: 'boolean', description: 'With --backchannel-logout-uri: the app needs `sid` in logout tokens (Tessera always sends it)' },
    json: JSON_OPTION,
  },
  check(values) {
    const grant = values.grant ?? 'authorization_code';
    if (!(GRANTS as readonly string[]).includes(grant)) throw new UsageError(`--grant must be ${GRANTS.slice(0, -1).join(', ')} or ${GRANTS.at(-1)}, not ${JSON.stringify(grant)}`);
    if (values['backchannel-logout-session-required'] && values['backchannel-logout-uri'] === undefined) throw new UsageError('--backchannel-logout-session-required needs --backchannel-logout-uri URI');
    if (grant === 'device_code') {
      const misplaced = [...MACHINE_ONLY, ...DEVICE_EXCLUDED].find((option) => given(values[option]));
      if (misplaced) throw new UsageError(`--${misplaced} is not for devices (--grant device_code)`);
      return;
    }
    if (grant === 'authorization_code') {
      const misplaced = MACHINE_ONLY.find((option) => given(values[option]));
      if (misplaced) throw new UsageError(`--${misplaced} is for machine clients (--grant client_credentials)`);
      if (!values['redirect-uri'].length) throw new UsageError('"clients create" needs --redirect-uri URI');
      return;
    }
    const misplaced = [...RELYING_PARTY_ONLY, ...LOGOUT_OPTIONS].find((option) => given(values[option]));
    if (misplaced) throw new UsageError(`--${misplaced} is for relying parties, not --grant client_credentials`);
    const auth = values.auth ?? 'client_secret_basic';
    if (!(MACHINE_AUTH_METHODS as readonly string[]).includes(auth)) throw new UsageError(`--auth must be one of ${MACHINE_AUTH_METHODS.join(', ')}, not ${JSON.stringify(auth)}`);
    for (const [option, method] of Object.entries(CREDENTIAL_OPTIONS)) {
      if (method !== auth && given(values[option as keyof typeof values])) throw new UsageError(`--${option} is for --auth ${method}, not ${auth}`);
    }
    if (values.jwks && values['jwks-uri']) throw new UsageError('give --jwks or --jwks-uri, not both');
    if (!values.resource.length) throw new UsageError('"clients create --grant client_credentials" needs --resource URI');
    if (!values.scope.length) throw new UsageError('"clients create --grant client_credentials" needs --scope S');
  },
  async run({ values, services }) {
    const { clients, resources } = await services();
    let created: CreatedClient;
    const grant = values.grant ?? 'authorization_code';
    if (grant === 'authorization_code' || grant === 'device_code') {
      created = await clients.createRelyingParty({
        name: values.name,
        device: grant === 'device_code',
        ...(values['backchannel-logout-uri'] !== undefined && { backchannelLogoutUri: values['backchannel-logout-uri'] }),
        backchannelLogoutSessionRequired: values['backchannel-logout-session-required'],
        redirectUris: values['redirect-uri'],
        postLogoutRedirectUris: values['post-logout-redirect-uri'],
        public: values.public,
        native: values.native,
        requirePar: values['require-par'],
        requireDpop: values['require-dpop'],
        firstParty: values['first-party'],
        requireMfa: values['require-mfa'],
      });
    } else {
      const auth = (values.auth ?? 'client_secret_basic') as MachineAuthMethod;
      // Files are read and checked first: a bad one is reported with its path, and nothing is written.
      const certificates = values.cert.map(readCertificateFile);
      const jwks = values.jwks === undefined ? undefined : readJwksFile(values.jwks);
      created = await clients.createMachineClient({
        name: values.name,
        auth,
        tlsSubjects: tlsSubjectsFrom(values),
        certificates: certificates.map((certificate) => certificate.pem),
        ...(jwks && { jwks }),
        ...(values['jwks-uri'] !== undefined && { jwksUri: values['jwks-uri'] }),
        resources: await scopesPerResource(values.resource, values.scope, (audience) => resources.find(audience)),
        requireDpop: values['require-dpop'],
        roles: values.role,
      });
    }
    if (values.json) return printJson(created);
    printLines(
      `Created client ${JSON.stringify(values.name)}.`,
      `client_id:     ${created.client_id}`,
      ...(created.client_secret
        ? [`client_secret: ${created.client_secret}`, 'Store the secret now: Tessera keeps only a hash and cannot show it again.']
        : values.native ? ['Native app: no secret; it must use PKCE. Loopback redirect URIs match any port.']
          : values.public ? [grant === 'device_code' ? 'Public client: no secret.' : 'Public client: no secret; it must use PKCE.'] : []),
    );
  },
});

/**
 * Spreads the --scope values over the --resource values. With one resource every scope goes to it
 * (the domain refuses those it does not offer). With several, each scope goes to every resource that
 * offers it; a scope none of them offers, or a resource that gets no scope, is refused.
 */
async function scopesPerResource(
  audiences: readonly string[],
  scopes: readonly string[],
  find: (audience: string) => Promise<{ scopes: string[] } | undefined>,
): Promise<Record<string, string[]>> {
  if (audiences.length === 1) return { [audiences[0]!]: [...scopes] };
  const granted: Record<string, string[]> = {};
  const problems: string[] = [];
  const offeredByAny = new Set<string>();
  for (const audience of new Set(audiences)) {
    const resource = await find(audience);
    if (!resource) {
      problems.push(`no resource server ${audience}; create it first with "tessera resources create"`);
      continue;
    }
    granted[audience] = [...new Set(scopes)].filter((scope) => resource.scopes.includes(scope));
    granted[audience].forEach((scope) => offeredByAny.add(scope));
    if (!granted[audience].length) problems.push(`${audience} offers none of the scopes given (it offers ${resource.scopes.join(', ')})`);
  }
  const homeless = [...new Set(scopes)].filter((scope) => !offeredByAny.has(scope));
  if (homeless.length) problems.push(`no resource given offers the scope ${homeless.join(', ')}`);
  if (problems.length) throw new AppError('ERR_CLIENT_INVALID', problems.join('; '));
  return granted;
}

/** What `clients list` shows: how each client authenticates and what it may do; never a secret. */
function describeClient(client: { client_id: string; client_name?: unknown; source: 'config' | 'store'; metadata: Record<string, unknown> }) {
  const { metadata } = client;
  const auth = typeof metadata.token_endpoint_auth_method === 'string' ? metadata.token_endpoint_auth_method : 'client_secret_basic';
  const keys = (metadata.jwks as { keys?: Array<Record<string, unknown>> } | undefined)?.keys ?? [];
  return {
    client_id: client.client_id,
    client_name: client.client_name,
    source: client.source,
    token_endpoint_auth_method: auth,
    // oidc-provider's default when a registration names none.
    grant_types: Array.isArray(metadata.grant_types) ? metadata.grant_types as string[] : ['authorization_code'],
    ...(auth === 'self_signed_tls_client_auth' && { thumbprints: keys.map((key) => key.kid) }),
    ...(auth === 'tls_client_auth' && { tls_subjects: metadata.tessera_tls_subjects ?? tlsSubjectFromStandardMetadata(metadata) }),
    ...(metadata.tessera_resources !== undefined && { tessera_resources: metadata.tessera_resources }),
    ...(typeof metadata.tessera_resource_server === 'string' && { resource_server: metadata.tessera_resource_server }),
    ...(Array.isArray(metadata.tessera_roles) && { roles: metadata.tessera_roles as string[] }),
    ...(metadata.application_type === 'native' && { application_type: 'native' }),
    ...(metadata.tessera_first_party === true && { first_party: true }),
    ...(metadata.tessera_require_mfa === true && { require_mfa: true }),
    ...(registeredKind(metadata) && { registered: registeredKind(metadata) }),
    ...(typeof metadata[FIRST_USED_AT] === 'number' && { first_used_at: new Date(metadata[FIRST_USED_AT] * 1000).toISOString() }),
    metadata,
  };
}

/** A static tls_client_auth client from clients.json names its one subject the RFC 8705 way. */
function tlsSubjectFromStandardMetadata(metadata: Record<string, unknown>): TlsSubject[] {
  return Object.entries(TLS_SUBJECT_METADATA)
    .filter(([, property]) => typeof metadata[property] === 'string')
    .map(([type, property]) => ({ type: type as TlsSubject['type'], value: metadata[property] as string }));
}

/** The last column of the human listing: where a relying party redirects, or what a machine client reaches. */
function clientDetails(client: ReturnType<typeof describeClient>): string {
  const { metadata } = client;
  if (client.resource_server) return `introspects for ${client.resource_server}`;
  if (client.tessera_resources && typeof client.tessera_resources === 'object') {
    return Object.entries(client.tessera_resources as Record<string, string[]>).map(([audience, scopes]) => `${audience} (${scopes.join(' ')})`).join(', ');
  }
  return Array.isArray(metadata.redirect_uris) ? metadata.redirect_uris.join(' ') : '';
}

const list = defineCommand({
  summary: 'List clients from the store and from CONFIG_DIR/clients.json (secrets are never shown)',
  options: { json: JSON_OPTION },
  async run({ values, services }) {
    const clients = (await (await services()).clients.list()).map(describeClient);
    if (values.json) return printJson(clients);
    if (!clients.length) return printLines('No clients yet. Create one with "tessera clients create".');
    printTable(
      ['CLIENT_ID', 'SOURCE', 'AUTH', 'GRANTS', 'NAME', 'REDIRECT_URIS / RESOURCES'],
      clients.map((client) => [
        client.client_id,
        client.registered ? `${client.source} (${client.registered})` : client.source,
        client.token_endpoint_auth_method,
        client.grant_types.join(',') || '-',
        typeof client.client_name === 'string' ? client.client_name : '',
        clientDetails(client),
      ]),
    );
  },
});

const remove = defineCommand({
  summary: 'Delete a client created with the CLI',
  args: [{ name: 'CLIENT_ID', description: 'The client to delete' }],
  options: { json: JSON_OPTION },
  async run({ values, args: [clientId = ''], config, services }) {
    const { clients } = await services();
    if (!(await clients.delete(clientId))) {
      const isStatic = clients.staticClient(clientId) !== undefined;
      throw new AppError('ERR_NOT_FOUND', isStatic
        ? `client ${clientId} is defined in ${path.join(config.configDir, 'clients.json')}; remove it there`
        : `no client with id ${clientId}`);
    }
    if (values.json) return printJson({ client_id: clientId, deleted: true });
    printLines(`Deleted client ${clientId}.`);
  },
});

export const clientsGroup = defineGroup('Manage OAuth clients: relying parties and machine clients', {
  create,
  list,
  delete: remove,
  certs: certsGroup,
});
