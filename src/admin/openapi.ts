/**
 * The OpenAPI 3.1 documents of the admin API and the registration API, generated from their route
 * tables and zod schemas
 * (z.toJSONSchema, JSON Schema 2020-12 as OpenAPI 3.1 uses): the same objects that validate every
 * request and answer, so the document cannot say one thing while the API does another.
 * Schemas with an id (`.meta({ id })` in schemas.ts) become components and are referenced.
 */
import { z } from 'zod';

import { ADMIN_API_PATH, ADMIN_SCOPE, ADMIN_TOKEN_TTL_SECONDS, adminAudience } from './resource.ts';
import type { Route } from './route-table.ts';
import { errorBody } from './schemas.ts';

type Json = Record<string, unknown>;

/** What an API's document says besides its routes. */
export interface DocumentSpec {
  readonly info: Json;
  readonly serverUrl: string;
  /** The document-wide security requirement, and the schemes it names. */
  readonly security: readonly Json[];
  readonly securitySchemes: Json;
  /** Statuses every route of the API can answer, whatever it does. */
  readonly commonErrors: readonly number[];
  /** Per status, the shared response component (its name, and what it means in this API). */
  readonly errorResponses: Readonly<Record<number, ErrorResponse>>;
  /** Operations that are not in the table (the document itself). */
  readonly extraPaths?: Record<string, Record<string, Json>>;
}

export interface ErrorResponse {
  readonly name: string;
  readonly description: string;
  readonly headers?: Json;
}

export const RETRY_AFTER: Json = { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } };

/** Statuses every admin route can answer, whatever it does. */
const COMMON_ERRORS = [400, 401, 403, 429] as const;

const ERROR_RESPONSES: Record<number, ErrorResponse> = {
  400: { name: 'BadRequest', description: 'The request is not valid: `fields` says what is wrong where' },
  401: {
    name: 'Unauthorized',
    description: 'No access token, or one that is expired, not for this API, not signed by this server, or bound to a proof the request lacks',
    headers: { 'WWW-Authenticate': { description: 'Bearer, with error="invalid_token" when a token was sent', schema: { type: 'string' } } },
  },
  403: {
    name: 'Forbidden',
    description: 'The token does not carry the admin scope, or its holder no longer holds the admin role',
    headers: { 'WWW-Authenticate': { description: 'Bearer error="insufficient_scope"', schema: { type: 'string' } } },
  },
  404: { name: 'NotFound', description: 'No such user, client, resource server, session or grant' },
  409: { name: 'Conflict', description: 'It exists already, or is configured in a file or built in and cannot be changed here' },
  413: { name: 'TooLarge', description: 'The body is larger than 64 kB' },
  415: { name: 'UnsupportedMediaType', description: 'The body is not application/json' },
  429: {
    name: 'TooManyRequests',
    description: 'Too many requests with a bad token from this address',
    headers: RETRY_AFTER,
  },
  503: {
    name: 'Unavailable',
    description: 'The store (or the audit trail) is not reachable right now',
    headers: RETRY_AFTER,
  },
};

export function openApiDocument(routes: readonly Route[], issuer: string): Json {
  const scopes = { [ADMIN_SCOPE]: 'Everything in this API; issued only to holders of the admin role' };
  return routeDocument(routes, {
    info: {
      title: 'Tessera admin API',
      version: '1',
      description: [
        'Manage users, their sessions and grants, clients, resource servers, keys, and read the audit trail.',
        `Authenticate with an access token Tessera issued for the resource \`${adminAudience(issuer)}\` with the scope \`${ADMIN_SCOPE}\`:`,
        'a machine client allowed that resource and holding the admin role (client credentials), or a person with the admin role',
        `signing in through an app allowed that resource. Tokens live ${ADMIN_TOKEN_TTL_SECONDS} seconds; the holder's role is checked again at every request.`,
        'Lists are paginated: pass `next_cursor` back as `cursor`. Request bodies are JSON objects of at most 64 kB; unknown fields are refused.',
      ].join(' '),
    },
    serverUrl: `${issuer}${ADMIN_API_PATH}`,
    security: [{ adminToken: [ADMIN_SCOPE] }],
    securitySchemes: {
      adminToken: {
        type: 'oauth2',
        description: `Send the access token as \`Authorization: Bearer TOKEN\`; ask for it with \`resource=${adminAudience(issuer)}\`.`,
        flows: {
          clientCredentials: { tokenUrl: `${issuer}/token`, scopes },
          authorizationCode: { authorizationUrl: `${issuer}/auth`, tokenUrl: `${issuer}/token`, scopes },
        },
      },
    },
    commonErrors: COMMON_ERRORS,
    errorResponses: ERROR_RESPONSES,
    extraPaths: {
      '/openapi.json': {
        get: {
          operationId: 'getOpenApiDocument',
          summary: 'This document (no token needed)',
          tags: ['Document'],
          security: [],
          responses: { 200: { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
  });
}

/** The document of one route table, whichever API it is. */
export function routeDocument(routes: readonly Route<unknown, unknown>[], spec: DocumentSpec): Json {
  const schemas: Record<string, unknown> = {};

  /** JSON Schema for one zod schema; its named parts go to components.schemas. */
  function convert(schema: z.ZodType, io: 'input' | 'output'): Json {
    const { $schema: _dialect, $defs, ...json } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json & { $defs?: Record<string, Json> };
    for (const [id, definition] of Object.entries($defs ?? {})) schemas[id] ??= relink(definition);
    return relink(json);
  }

  function parameters(schema: z.ZodObject | undefined, location: 'path' | 'query'): Json[] {
    return Object.entries(schema?.shape ?? {}).map(([name, property]) => {
      const { description, ...json } = convert(property as z.ZodType, 'input');
      const isArray = json.type === 'array' || (Array.isArray(json.anyOf) && json.anyOf.some((option) => (option as Json).type === 'array'));
      return {
        name,
        in: location,
        required: location === 'path' || !(property as z.ZodType).safeParse(undefined).success,
        ...(typeof description === 'string' && { description }),
        schema: json,
        ...(isArray && { style: 'form', explode: true }),
      };
    });
  }

  const paths: Record<string, Record<string, Json>> = { ...spec.extraPaths };
  for (const route of routes) {
    const status = route.response ? route.status ?? 200 : 204;
    const responses: Json = {
      [status]: route.response
        ? { description: route.summary, content: { 'application/json': { schema: convert(route.response, 'output') } } }
        : { description: 'Done; no content' },
    };
    for (const code of [...spec.commonErrors, ...(route.errors ?? [])].sort()) {
      responses[code] = { $ref: `#/components/responses/${spec.errorResponses[code]!.name}` };
    }
    (paths[route.path] ??= {})[route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description && { description: route.description }),
      tags: [route.tag],
      parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
      ...(route.body && { requestBody: { required: true, content: { 'application/json': { schema: convert(route.body, 'input') } } } }),
      responses,
    };
  }

  const errorSchema = convert(errorBody, 'output');
  return {
    openapi: '3.1.0',
    info: spec.info,
    servers: [{ url: spec.serverUrl }],
    security: spec.security,
    tags: [...new Set(routes.map((route) => route.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas,
      responses: Object.fromEntries(Object.values(spec.errorResponses).map(({ name, description, headers }) => [name, {
        description,
        ...(headers && { headers }),
        content: { 'application/json': { schema: errorSchema } },
      }])),
      securitySchemes: spec.securitySchemes,
    },
  };
}

/** `$defs` references become references to components. */
function relink(json: Json): Json {
  return JSON.parse(JSON.stringify(json).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json;
}
