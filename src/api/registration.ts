/**
 * `POST /api/accounts`: account registration for first-party apps that draw their own sign-up form
 * (a native app, a backend). The same rules as the registration page: the same rate limit, password
 * policy and verification email (AccountService.register, EmailVerification.send).
 *
 * Such an app sees the person's password, which only Tessera's own apps may: so the caller is a
 * client marked first-party (`tessera_first_party: true`), confidential ones authenticating with
 * their secret (HTTP Basic), public ones naming themselves with `client_id` in the body.
 * No CORS headers are sent: a web app on another origin sends people to the registration page
 * (prompt=create) instead.
 *
 * Every answer is JSON: 201 {sub, email, email_verified}; 400 {error, error_description, fields?};
 * 401 invalid_client; 409 email_taken; 413, 415; 429 with Retry-After; 503 with Retry-After while the
 * store is unreachable. Nothing a caller sends makes a 500.
 *
 * It is one route on the admin API's route-table machinery (admin/route-table.ts, route-steps.ts):
 * the same body reading, validation, answer checks and error answers (the table in errors.ts), and an
 * OpenAPI document from the same schemas at /api/openapi.json. Its own parts: no bearer tokens (the
 * caller is a client, identified in the handler once the body is read), and the registration rate
 * limit, counted before anything is read.
 */
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import type { Provider } from 'oidc-provider';
import { z } from 'zod';

import { RETRY_AFTER, routeDocument } from '../admin/openapi.ts';
import { answer, answerWithError, fieldsOf, invalidRequest, noRoute, readBody } from '../admin/route-steps.ts';
import { defineApiRoute, koaPath, type Route } from '../admin/route-table.ts';
import type { AccountService } from '../domain/accounts.ts';
import { registrationSchema } from '../domain/accounts.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import { AppError, isAppError } from '../errors.ts';
import type { RateLimits } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';

import { REGISTRATION_API_PREFIX } from './paths.ts';

export const REGISTRATION_API_PATH = `${REGISTRATION_API_PREFIX}/accounts`;
export const REGISTRATION_OPENAPI_PATH = `${REGISTRATION_API_PREFIX}/openapi.json`;
const BODY_LIMIT = '16kb';

export interface RegistrationApiDependencies {
  provider: () => Provider;
  accounts: AccountService;
  emailVerification: EmailVerification;
  rateLimits: RateLimits;
  logger: Logger;
}

/** Claim-style names on the wire, as in ID tokens; only strings (an object is never a value here). */
const bodySchema = z.strictObject({
  email: z.string({ error: 'Enter an email address' }),
  password: z.string({ error: 'Choose a password' }),
  name: z.string({ error: 'Must be a string' }).optional(),
  given_name: z.string({ error: 'Must be a string' }).optional(),
  family_name: z.string({ error: 'Must be a string' }).optional(),
  client_id: z.string({ error: 'Must be a string' }).optional().meta({ description: 'A public app names itself here; a confidential one uses HTTP Basic' }),
}, { error: (issue) => (issue.code === 'unrecognized_keys' ? 'Unknown field' : 'The body must be a JSON object') }).meta({ id: 'Registration' });

const registered = z.object({ sub: z.string(), email: z.string(), email_verified: z.boolean() }).meta({ id: 'RegisteredAccount' });

/** The query string is not read, and (as before this API had a table) not refused either. */
const anyQuery = z.object({});

/** The domain schema's names -> the wire's. */
const FIELD_NAMES: Record<string, string> = { givenName: 'given_name', familyName: 'family_name' };

function invalidClient(description: string): AppError {
  return new AppError('ERR_INVALID_CLIENT', description);
}

/** RFC 6749 section 2.3.1: both parts of Basic client credentials are form-urlencoded. */
function basicCredentials(header: string): { clientId: string; secret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replaceAll('+', ' ')),
    };
  } catch {
    return undefined;
  }
}

/** The first-party app calling: a confidential one by its secret, a public one by its id. */
async function identifyClient(provider: Provider, ctx: Context, bodyClientId: string | undefined): Promise<string> {
  const header = ctx.get('Authorization');
  const basic = header ? basicCredentials(header) : undefined;
  if (header && !basic) throw invalidClient('The Authorization header must carry HTTP Basic client credentials');
  const clientId = basic?.clientId ?? bodyClientId;
  if (!clientId) throw invalidClient('Identify the app: HTTP Basic client credentials, or client_id in the body for a public app');
  if (basic && bodyClientId !== undefined && bodyClientId !== basic.clientId) throw invalidRequest('client_id differs from the authenticated client', { client_id: 'Does not match the Authorization header' });
  let client: Awaited<ReturnType<Provider['Client']['find']>>;
  try {
    client = await provider.Client.find(clientId);
  } catch {
    client = undefined;
  }
  if (!client || client.metadata().tessera_first_party !== true) {
    throw invalidClient('This client is unknown, or is not a first-party app allowed to register accounts');
  }
  const method = client.clientAuthMethod;
  if (method === 'none') {
    if (basic?.secret) throw invalidClient('This is a public client: it has no secret');
    return clientId;
  }
  if (method !== 'client_secret_basic' && method !== 'client_secret_post') {
    throw invalidClient('This client authenticates in a way the registration API does not take; give it a client secret');
  }
  if (!basic?.secret || !(await client.compareClientSecret(basic.secret))) {
    throw invalidClient('The client must authenticate with its secret (HTTP Basic)');
  }
  return clientId;
}

const defineRoute = defineApiRoute<RegistrationApiDependencies, undefined, 'Accounts'>();

const registerAccount = defineRoute({
  method: 'post',
  path: '/accounts',
  operationId: 'registerAccount',
  tag: 'Accounts',
  summary: 'Register a person (first-party apps only)',
  description: 'The registration page\'s rules: its rate limit, password policy and verification email. The person confirms their address through the link mailed to them.',
  status: 201,
  errors: [409, 413, 415, 503],
  query: anyQuery,
  body: bodySchema,
  response: registered,
  async handle({ body, ctx, deps: { provider, accounts, emailVerification, logger } }) {
    const { password, client_id: bodyClientId, ...profile } = body;
    const clientId = await identifyClient(provider(), ctx, bodyClientId);

    const registration = { email: profile.email, password, name: profile.name, givenName: profile.given_name, familyName: profile.family_name };
    const shape = registrationSchema.safeParse(registration);
    const fields = shape.success ? {} : fieldsOf(shape.error.issues, FIELD_NAMES);
    if (!fields.password) {
      const problem = await accounts.passwordPolicy.check(password, { email: shape.success ? shape.data.email : undefined });
      if (problem) fields.password = problem.message;
    }
    if (Object.keys(fields).length) throw invalidRequest(Object.values(fields).join('. '), fields);

    const account = await accounts.register(registration).catch((error: unknown) => {
      if (isAppError(error, 'ERR_EMAIL_TAKEN')) throw new AppError('ERR_EMAIL_TAKEN', 'An account with this email already exists', { fields: { email: 'Already registered' } });
      throw error;
    });
    logger.info({ sub: account.sub, clientId }, 'account registered through the API');
    emailVerification.send(account).catch((error: unknown) => logger.error({ err: error, sub: account.sub }, 'could not send the verification email'));
    return { sub: account.sub, email: account.email, email_verified: account.emailVerified };
  },
});

export const REGISTRATION_ROUTES: readonly Route<RegistrationApiDependencies, undefined>[] = [registerAccount];

export function registrationApiDocument(issuer: string): object {
  return routeDocument(REGISTRATION_ROUTES, {
    info: {
      title: 'Tessera registration API',
      version: '1',
      description: 'Account registration for first-party apps (clients marked tessera_first_party) that draw their own sign-up form. Request bodies are JSON objects of at most 16 kB; unknown fields are refused.',
    },
    serverUrl: `${issuer}${REGISTRATION_API_PREFIX}`,
    // A public app sends no credentials (it names itself with client_id in the body), hence the empty requirement.
    security: [{ clientSecret: [] }, {}],
    securitySchemes: {
      clientSecret: { type: 'http', scheme: 'basic', description: 'A confidential first-party app: its client_id and secret' },
    },
    commonErrors: [400, 401, 429],
    errorResponses: {
      400: { name: 'BadRequest', description: 'The request is not valid: `fields` says what is wrong where' },
      401: { name: 'Unauthorized', description: 'invalid_client: not a first-party app, or it did not authenticate', headers: { 'WWW-Authenticate': { description: 'Basic', schema: { type: 'string' } } } },
      409: { name: 'Conflict', description: 'email_taken: an account with this email exists' },
      413: { name: 'TooLarge', description: `The body is larger than ${BODY_LIMIT.replace('kb', ' kB')}` },
      415: { name: 'UnsupportedMediaType', description: 'The body is not application/json' },
      429: { name: 'TooManyRequests', description: 'Too many registrations from this address', headers: RETRY_AFTER },
      503: { name: 'Unavailable', description: 'The store is not reachable right now', headers: RETRY_AFTER },
    },
  });
}

/** Before anything is read or hashed, and every attempt counts, as on the page. */
function limitRegistrations(rateLimits: RateLimits): Middleware {
  return async function limitRegistration(ctx: Context, next: Next) {
    await rateLimits.registration(ctx);
    await next();
  };
}

export function registrationApi(deps: RegistrationApiDependencies): Middleware {
  const router = new Router({ prefix: REGISTRATION_API_PREFIX });
  for (const route of REGISTRATION_ROUTES) {
    router.register(koaPath(route.path), [route.method.toUpperCase()], [
      limitRegistrations(deps.rateLimits),
      readBody(route, BODY_LIMIT),
      answer(route, () => ({ caller: undefined, deps, note: () => undefined })),
    ], { name: route.operationId });
  }
  const paths = new Set(REGISTRATION_ROUTES.map((route) => `${REGISTRATION_API_PREFIX}${route.path}`));
  // Only the table's paths (and the document) are this API's: everything else under /api is not, and
  // falls through to the pages' 404.
  const dispatch = compose([router.routes() as Middleware, noRoute(router, 'There is no registration API endpoint at this path')]);
  let document: object | undefined;

  return async function registrationApiRequest(ctx: Context, next: Next) {
    if (!paths.has(ctx.path) && ctx.path !== REGISTRATION_OPENAPI_PATH) return next();
    ctx.set('Cache-Control', 'no-store');
    try {
      if (ctx.path === REGISTRATION_OPENAPI_PATH) {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new AppError('ERR_METHOD_NOT_ALLOWED', 'Use GET', { headers: { Allow: 'GET, HEAD' } });
        document ??= registrationApiDocument(deps.provider().issuer);
        ctx.body = document;
        return;
      }
      await dispatch(ctx, async () => undefined);
    } catch (caught) {
      answerWithError(ctx, caught, deps.logger, { bodyLimit: BODY_LIMIT, what: 'registration API' });
    }
  };
}
