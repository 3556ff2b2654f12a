/**
 * `tessera resources ...`: resource servers (APIs) that Tessera issues access tokens for, by
 * resource indicator (RFC 8707). Each gets a client of its own for introspection and revocation,
 * whose secret `create` prints once.
 */
import path from 'node:path';

import { resourceView } from '../admin/views.ts';
import { ACCESS_TOKEN_SIGNING_ALGS, DEFAULT_ACCESS_TOKEN_SIGNING_ALG, type AccessTokenSigningAlg } from '../config.ts';
import { DEFAULT_RESOURCE_TTL_SECONDS, MAX_RESOURCE_TTL_SECONDS } from '../domain/resources.ts';
import { AppError } from '../errors.ts';
import { defineCommand, defineGroup, JSON_OPTION, UsageError } from './command.ts';
import { printJson, printLines, printTable, warn } from './output.ts';

const FORMATS = ['jwt', 'opaque'] as const;

const create = defineCommand({
  summary: 'Register a resource server (API); prints its introspection client\'s secret once',
  description: [
    'Register a resource server, named by its audience URI (the RFC 8707 resource indicator), with the',
    'scopes it offers. Access tokens for it are JWTs (RFC 9068, validated offline with the JWKS) or',
    'opaque (validated with introspection). The resource server gets its own client for introspection',
    'and revocation; its secret is printed once: Tessera keeps only its hash. JWT access tokens are signed',
    'with RS256 unless --signing-alg names another algorithm (ES256 and EdDSA tokens are smaller and',
    'several times cheaper to sign; check that the API\'s JWT library accepts the algorithm).',
  ].join('\n'),
  options: {
    audience: { type: 'string', required: true, placeholder: 'URI', description: 'The API\'s identifier, e.g. https://api.example.com (no fragment)' },
    scope: { type: 'string', multiple: true, required: true, placeholder: 'S', description: 'A scope the API offers, e.g. orders:read' },
    format: { type: 'string', placeholder: 'jwt|opaque', description: 'Access token format (default jwt)' },
    ttl: { type: 'string', placeholder: 'SECONDS', description: `Access token lifetime, 1 to ${MAX_RESOURCE_TTL_SECONDS} (default ${DEFAULT_RESOURCE_TTL_SECONDS})` },
    name: { type: 'string', placeholder: 'NAME', description: 'A name for people (defaults to the audience)' },
    'signing-alg': { type: 'string', placeholder: ACCESS_TOKEN_SIGNING_ALGS.join('|'), description: `JWS algorithm of its JWT access tokens (default ${DEFAULT_ACCESS_TOKEN_SIGNING_ALG})` },
    'scope-role': { type: 'string', multiple: true, placeholder: 'SCOPE=ROLE', description: 'Only holders of ROLE may receive SCOPE (repeat for several roles: any one is enough)' },
    client: { type: 'string', multiple: true, placeholder: 'ID', description: 'Only this client may ask for it in the code flow (repeatable); without it any client may, with the person\'s consent' },
    json: JSON_OPTION,
  },
  check(values) {
    for (const entry of values['scope-role']) {
      if (!/^[^=\s]+=[^=\s]+$/.test(entry)) throw new UsageError(`--scope-role must be SCOPE=ROLE, not ${JSON.stringify(entry)}`);
    }
    if (values.format !== undefined && !(FORMATS as readonly string[]).includes(values.format)) {
      throw new UsageError(`--format must be ${FORMATS.join(' or ')}, not ${JSON.stringify(values.format)}`);
    }
    if (values['signing-alg'] !== undefined) {
      if (!(ACCESS_TOKEN_SIGNING_ALGS as readonly string[]).includes(values['signing-alg'])) {
        throw new UsageError(`--signing-alg must be ${ACCESS_TOKEN_SIGNING_ALGS.join(', ')}, not ${JSON.stringify(values['signing-alg'])}`);
      }
      if (values.format === 'opaque') throw new UsageError('--signing-alg applies to JWT access tokens only, not to --format opaque');
    }
    if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError(`--ttl must be a whole number of seconds, not ${JSON.stringify(values.ttl)}`);
  },
  async run({ values, services }) {
    const { resources } = await services();
    const created = await resources.create({
      audience: values.audience,
      scopes: values.scope,
      name: values.name,
      format: values.format as (typeof FORMATS)[number] | undefined,
      ttlSeconds: values.ttl === undefined ? undefined : Number(values.ttl),
      scopeRoles: scopeRolesOf(values['scope-role']),
      clients: values.client,
      signingAlg: values['signing-alg'] as AccessTokenSigningAlg | undefined,
    });
    const output = {
      audience: created.audience,
      scopes: created.scopes,
      format: created.format,
      ttl: created.ttlSeconds,
      ...(created.format === 'jwt' && { signing_alg: created.signingAlg ?? DEFAULT_ACCESS_TOKEN_SIGNING_ALG }),
      ...(created.scopeRoles && { scope_roles: created.scopeRoles }),
      ...(created.clients && { clients: created.clients }),
      client_id: created.client.client_id,
      client_secret: created.client.client_secret,
    };
    if (values.json) return printJson(output);
    printLines(
      `Created resource server ${created.audience} (${created.format === 'jwt' ? `JWT access tokens signed with ${output.signing_alg}` : 'opaque access tokens'}, ${created.ttlSeconds} s, scopes: ${created.scopes.join(' ')}).`,
      ...(created.scopeRoles ? [`Limited to roles: ${describeScopeRoles(created.scopeRoles)}.`] : []),
      created.clients ? `In the code flow only for: ${created.clients.join(', ')}.` : 'In the code flow any client may ask for it, with the person\'s consent.',
      'Its client for introspection and revocation:',
      `client_id:     ${output.client_id}`,
      `client_secret: ${output.client_secret}`,
      'Store the secret now: Tessera keeps only a hash and cannot show it again.',
    );
  },
});

const list = defineCommand({
  summary: 'List resource servers from the store and from CONFIG_DIR/resources.json',
  options: { json: JSON_OPTION },
  async run({ values, services }) {
    const { resources, clients } = await services();
    const introspectors = await clients.introspectionClients();
    // The same public shape as the admin API's GET /resources.
    const rows = (await resources.list()).map((resource) => resourceView(resource, introspectors.get(resource.audience)));
    if (values.json) return printJson(rows);
    if (!rows.length) return printLines('No resource servers yet. Create one with "tessera resources create".');
    printTable(
      ['AUDIENCE', 'SOURCE', 'FORMAT', 'SIGNING', 'TTL', 'CLIENT_ID', 'SCOPES'],
      rows.map((row) => [row.audience, row.source, row.format, row.signing_alg ?? '-', String(row.ttl), row.client_id ?? '-', row.scopes.map((scope) => row.scope_roles?.[scope] ? `${scope}(${row.scope_roles[scope]!.join('|')})` : scope).join(' ')]),
    );
  },
});

const remove = defineCommand({
  summary: 'Delete a resource server created with the CLI, and its introspection client',
  args: [{ name: 'AUDIENCE', description: 'The resource server\'s audience URI' }],
  options: { json: JSON_OPTION },
  async run({ values, args: [audience = ''], config, services }) {
    const { resources, clients } = await services();
    if (!(await resources.delete(audience))) {
      if (resources.builtIns().some((resource) => resource.audience === audience)) {
        throw new AppError('ERR_RESOURCE_INVALID', `resource server ${audience} is Tessera's own admin API; ADMIN_API=false turns it off`);
      }
      const isStatic = (await resources.list()).some((resource) => resource.audience === audience && resource.source === 'config');
      throw new AppError('ERR_NOT_FOUND', isStatic
        ? `resource server ${audience} is defined in ${path.join(config.configDir, 'resources.json')}; remove it there`
        : `no resource server ${audience}`);
    }
    const stillAllowed = (await clients.list())
      .filter((client) => Object.hasOwn((client.metadata.tessera_resources as Record<string, unknown> | undefined) ?? {}, audience))
      .map((client) => client.client_id);
    if (stillAllowed.length) warn(`clients ${stillAllowed.join(', ')} still list ${audience}; they get no tokens for it unless it is created again`);
    if (values.json) return printJson({ audience, deleted: true });
    printLines(`Deleted resource server ${audience}. Tokens for it are no longer issued.`);
  },
});

/** `orders:write=admin`, repeatable: the roles of each scope, in the order given. */
function scopeRolesOf(entries: readonly string[]): Record<string, string[]> | undefined {
  if (!entries.length) return undefined;
  const scopeRoles: Record<string, string[]> = {};
  for (const entry of entries) {
    const [scope = '', role = ''] = entry.split('=');
    (scopeRoles[scope] ??= []).push(role);
  }
  return scopeRoles;
}

function describeScopeRoles(scopeRoles: Record<string, string[]>): string {
  return Object.entries(scopeRoles).map(([scope, roles]) => `${scope} needs ${roles.join(' or ')}`).join('; ');
}

export const resourcesGroup = defineGroup('Manage resource servers (APIs) and their scopes', {
  create,
  list,
  delete: remove,
});
