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
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Provider } from 'oidc-provider';
import { z } from 'zod';

import type { AccountService } from '../domain/accounts.ts';
import { registrationSchema } from '../domain/accounts.ts';
import type { EmailVerification } from '../domain/email-verification.ts';
import { isAppError } from '../errors.ts';
import { RateLimitedError, type RateLimits } from '../http/rate-limit.ts';
import type { Logger } from '../log.ts';
import { STORE_RETRY_AFTER_SECONDS } from '../store/outage.ts';

export const REGISTRATION_API_PATH = '/api/accounts';
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
  client_id: z.string({ error: 'Must be a string' }).optional(),
}, { error: (issue) => (issue.code === 'unrecognized_keys' ? 'Unknown field' : 'The body must be a JSON object') });

const FIELD_NAMES: Record<string, string> = { givenName: 'given_name', familyName: 'family_name' };

class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly fields: Record<string, string> | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, error: string, description: string, options: { fields?: Record<string, string>; headers?: Record<string, string> } = {}) {
    super(description);
    this.status = status;
    this.error = error;
    this.fields = options.fields;
    this.headers = options.headers ?? {};
  }
}

function invalidRequest(description: string, fields?: Record<string, string>): ApiError {
  return new ApiError(400, 'invalid_request', description, fields ? { fields } : {});
}

function invalidClient(description: string): ApiError {
  return new ApiError(401, 'invalid_client', description, { headers: { 'WWW-Authenticate': 'Basic realm="tessera", charset="UTF-8"' } });
}

/** First field message wins; keys are the wire names. */
function fieldsOf(issues: readonly z.core.$ZodIssue[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) fields[key] ??= 'Unknown field';
      continue;
    }
    const [first] = issue.path;
    const key = first === undefined ? '_' : FIELD_NAMES[String(first)] ?? String(first);
    fields[key] ??= issue.message;
  }
  return fields;
}

/** JSON for everything, whatever went wrong; the details of a failure on our side stay in the log. */
function jsonErrors(logger: Logger) {
  return async function answerInJson(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (caught) {
      const error = caught as { status?: number; expose?: boolean; message?: string; retryAfterSeconds?: number; type?: string };
      let answer: ApiError;
      if (caught instanceof ApiError) {
        answer = caught;
      } else if (caught instanceof RateLimitedError) {
        answer = new ApiError(429, 'rate_limited', error.message ?? 'Too many requests', {
          headers: { 'Retry-After': String(caught.retryAfterSeconds) },
        });
      } else if (error.status === 503) {
        // The store is unreachable (store/outage.ts): over by itself, so the app is told when to retry.
        logger.warn({ err: caught, requestId: ctx.state.requestId }, 'store unavailable');
        answer = new ApiError(503, 'temporarily_unavailable', 'The service is briefly unavailable. Try again in a few seconds.', {
          headers: { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) },
        });
      } else if (error.status === 413) {
        answer = new ApiError(413, 'request_too_large', `The body is limited to ${BODY_LIMIT}`);
      } else if (error.status === 415) {
        answer = new ApiError(415, 'unsupported_media_type', 'Send the body as application/json');
      } else if (typeof error.status === 'number' && error.status >= 400 && error.status < 500 && error.expose !== false) {
        // The body parser's own refusals: malformed JSON, a JSON value that is not an object, a bad charset.
        answer = invalidRequest(error.type === 'entity.parse.failed' ? 'The body is not valid JSON' : error.message ?? 'The request was not valid');
      } else {
        logger.error({ err: caught, requestId: ctx.state.requestId }, 'registration API failed');
        answer = new ApiError(500, 'server_error', 'Something went wrong on our side. Please try again.');
      }
      ctx.status = answer.status;
      for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
      ctx.body = {
        error: answer.error,
        error_description: answer.message,
        ...(answer.fields && { fields: answer.fields }),
      };
    }
  };
}

/** The body parser only reads JSON; anything else is refused before a byte of it is read. */
async function requireJson(ctx: Context, next: Next) {
  if (!ctx.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'Send the body as application/json');
  await next();
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

export function registrationApiRouter({ provider, accounts, emailVerification, rateLimits, logger }: RegistrationApiDependencies): Router {
  const router = new Router();

  /** The first-party app calling: a confidential one by its secret, a public one by its id. */
  async function identifyClient(ctx: Context, bodyClientId: string | undefined): Promise<string> {
    const header = ctx.get('Authorization');
    const basic = header ? basicCredentials(header) : undefined;
    if (header && !basic) throw invalidClient('The Authorization header must carry HTTP Basic client credentials');
    const clientId = basic?.clientId ?? bodyClientId;
    if (!clientId) throw invalidClient('Identify the app: HTTP Basic client credentials, or client_id in the body for a public app');
    if (basic && bodyClientId !== undefined && bodyClientId !== basic.clientId) throw invalidRequest('client_id differs from the authenticated client', { client_id: 'Does not match the Authorization header' });
    let client: Awaited<ReturnType<Provider['Client']['find']>>;
    try {
      client = await provider().Client.find(clientId);
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

  router.post(REGISTRATION_API_PATH,
    jsonErrors(logger),
    async function limitRegistrations(ctx: Context, next: Next) {
      // Before anything is read or hashed, and every attempt counts, as on the page.
      await rateLimits.registration(ctx);
      await next();
    },
    requireJson,
    bodyParser({ enableTypes: ['json'], jsonLimit: BODY_LIMIT, encoding: 'utf-8', jsonStrict: true }),
    async function register(ctx: Context) {
      const raw: unknown = ctx.request.body;
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalidRequest('The body must be a JSON object');
      const body = bodySchema.safeParse(raw);
      if (!body.success) throw invalidRequest('Some fields are missing or not right', fieldsOf(body.error.issues));
      const { password, client_id: bodyClientId, ...profile } = body.data;
      const clientId = await identifyClient(ctx, bodyClientId);

      const registration = { email: profile.email, password, name: profile.name, givenName: profile.given_name, familyName: profile.family_name };
      const shape = registrationSchema.safeParse(registration);
      const fields = shape.success ? {} : fieldsOf(shape.error.issues);
      if (!fields.password) {
        const problem = await accounts.passwordPolicy.check(password, { email: shape.success ? shape.data.email : undefined });
        if (problem) fields.password = problem.message;
      }
      if (Object.keys(fields).length) throw invalidRequest(Object.values(fields).join('. '), fields);

      try {
        const account = await accounts.register(registration);
        logger.info({ sub: account.sub, clientId }, 'account registered through the API');
        emailVerification.send(account).catch((error: unknown) => logger.error({ err: error, sub: account.sub }, 'could not send the verification email'));
        ctx.status = 201;
        ctx.body = { sub: account.sub, email: account.email, email_verified: account.emailVerified };
      } catch (error) {
        if (isAppError(error, 'ERR_EMAIL_TAKEN')) throw new ApiError(409, 'email_taken', 'An account with this email already exists', { fields: { email: 'Already registered' } });
        if (isAppError(error, 'ERR_INVALID_INPUT')) throw invalidRequest(error.message);
        throw error;
      }
    });

  // Only POST exists here; other methods get a JSON 405 rather than the HTML 404 page.
  router.all(REGISTRATION_API_PATH, jsonErrors(logger), async function onlyPost(ctx: Context) {
    ctx.set('Allow', 'POST');
    throw new ApiError(405, 'method_not_allowed', 'Use POST');
  });

  return router;
}
