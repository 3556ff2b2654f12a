/**
 * The one application error type, and the one table that says what each of its codes means on
 * the wire. Protocol errors come from oidc-provider; everything Tessera itself refuses is an
 * AppError with a stable `code` that callers switch on and tests assert on (as jose does).
 *
 * ERROR_TABLE is read by every surface that answers an error: the page handler (http/error-handler.ts),
 * the admin API and the registration API (through the route table's machinery), and the protocol
 * paths' JSON. So a code has one status and one `error` name everywhere, and a refusal added to the
 * domain is answered the same way on a page and in an API.
 */
export type AppErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_EMAIL_TAKEN'
  | 'ERR_INVALID_CREDENTIALS'
  | 'ERR_ACCOUNT_DISABLED'
  | 'ERR_INVALID_INPUT'
  | 'ERR_CSRF'
  | 'ERR_NOT_FOUND'
  | 'ERR_CLIENT_INVALID'
  /** A client with this id exists already. */
  | 'ERR_CLIENT_EXISTS'
  | 'ERR_RESOURCE_INVALID'
  /** A resource server with this audience exists already. */
  | 'ERR_RESOURCE_EXISTS'
  /** It exists already, or is configured in a file or built in, and cannot be changed here. */
  | 'ERR_CONFLICT'
  /** An upstream identity provider's settings were refused (bad issuer, taken id, ...). */
  | 'ERR_UPSTREAM_INVALID'
  /** An upstream provider with this id exists already. */
  | 'ERR_UPSTREAM_EXISTS'
  /** Signing in through an upstream provider failed (it refused, timed out, or answered wrongly). */
  | 'ERR_UPSTREAM_FAILED'
  /** That upstream identity is already linked to an account. */
  | 'ERR_IDENTITY_TAKEN'
  | 'ERR_CERTIFICATE_INVALID'
  | 'ERR_SECRET'
  | 'ERR_STORE_UNAVAILABLE'
  /** A part of Tessera this instance does not run (the audit trail without a store for it). */
  | 'ERR_FEATURE_UNAVAILABLE'
  /** `tessera serve` with WORKERS > 1: the workers could not start, or did not stop cleanly. */
  | 'ERR_WORKERS'
  | 'ERR_INTERACTION_EXPIRED'
  | 'ERR_RATE_LIMITED'
  /** The request was sent for a host that is not Tessera's (421): see http/edge.ts. */
  | 'ERR_MISDIRECTED'
  /** A request body sent with a Content-Encoding (415): Tessera takes bodies only as they are, see http/edge.ts. */
  | 'ERR_UNSUPPORTED_ENCODING'
  /** A second-factor code or passkey answer was wrong, expired or already used. */
  | 'ERR_SECOND_FACTOR_INVALID'
  /** A second factor cannot be used or set up now (already set up, not configured, none left). */
  | 'ERR_SECOND_FACTOR_UNAVAILABLE'
  /** An API caller's bearer token is missing, expired, forged or not for this API (RFC 6750). */
  | 'ERR_INVALID_TOKEN'
  /** An API caller's token lacks the scope or role the API needs (RFC 6750). */
  | 'ERR_INSUFFICIENT_SCOPE'
  /** The registration API's caller is not a first-party client, or did not authenticate as one. */
  | 'ERR_INVALID_CLIENT'
  /** No API endpoint at this path (as opposed to no such user, client, ...). */
  | 'ERR_UNKNOWN_ENDPOINT'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_BODY_TOO_LARGE'
  /** An API body that is not application/json. */
  | 'ERR_UNSUPPORTED_MEDIA_TYPE'
  /** Anything not meant for the caller: a bug, a failure on our side. Its details stay in the log. */
  | 'ERR_INTERNAL';

export interface ErrorMeaning {
  readonly status: number;
  /** The `error` of the JSON body and of the error page (OAuth's name where OAuth has one). */
  readonly oauthError: string;
  /** Whether the error's own message may be shown to the person or client (Koa's convention). */
  readonly expose: boolean;
  /** What the caller is told instead, when the message is not exposed. */
  readonly publicText?: string;
  /** Sent with every answer of this code. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Retry-After for every answer of this code (an error may name its own, as rate limits do). */
  readonly retryAfterSeconds?: number;
}

/** What a 503 caused by the store tells clients to wait: about how long a MongoDB failover or a restart takes. */
export const STORE_RETRY_AFTER_SECONDS = 5;

const ON_OUR_SIDE = 'Something went wrong on our side. Please try again.';
const BRIEFLY_UNAVAILABLE = 'The service is briefly unavailable. Please try again in a few seconds.';

const internal = { status: 500, oauthError: 'server_error', expose: false, publicText: ON_OUR_SIDE } as const;
const invalidRequest = { status: 400, oauthError: 'invalid_request', expose: true } as const;
const conflict = { status: 409, oauthError: 'conflict', expose: true } as const;

export const ERROR_TABLE: Readonly<Record<AppErrorCode, ErrorMeaning>> = Object.freeze({
  ERR_CONFIG: internal,
  ERR_SECRET: internal,
  ERR_WORKERS: internal,
  ERR_INTERNAL: internal,
  ERR_STORE_UNAVAILABLE: { status: 503, oauthError: 'temporarily_unavailable', expose: false, publicText: BRIEFLY_UNAVAILABLE, retryAfterSeconds: STORE_RETRY_AFTER_SECONDS },
  ERR_FEATURE_UNAVAILABLE: { status: 503, oauthError: 'temporarily_unavailable', expose: true },

  ERR_INVALID_INPUT: invalidRequest,
  ERR_CLIENT_INVALID: invalidRequest,
  ERR_RESOURCE_INVALID: invalidRequest,
  ERR_CERTIFICATE_INVALID: invalidRequest,
  ERR_UPSTREAM_INVALID: invalidRequest,
  // A round trip to an upstream provider that failed (refused, timed out, bad ID token, replayed
  // state): the person's answer was not usable, never Tessera's fault, so a 400 page with a way on.
  ERR_UPSTREAM_FAILED: { status: 400, oauthError: 'upstream_sign_in_failed', expose: true },
  ERR_INTERACTION_EXPIRED: { status: 400, oauthError: 'interaction_expired', expose: true },
  ERR_SECOND_FACTOR_INVALID: { status: 400, oauthError: 'second_factor_invalid', expose: true },
  ERR_INVALID_CREDENTIALS: { status: 401, oauthError: 'invalid_credentials', expose: true },
  ERR_INVALID_TOKEN: { status: 401, oauthError: 'invalid_token', expose: true },
  ERR_INVALID_CLIENT: { status: 401, oauthError: 'invalid_client', expose: true, headers: { 'WWW-Authenticate': 'Basic realm="tessera", charset="UTF-8"' } },
  ERR_CSRF: { status: 403, oauthError: 'csrf', expose: true },
  ERR_ACCOUNT_DISABLED: { status: 403, oauthError: 'access_denied', expose: true },
  ERR_INSUFFICIENT_SCOPE: { status: 403, oauthError: 'insufficient_scope', expose: true },
  ERR_NOT_FOUND: { status: 404, oauthError: 'not_found', expose: true },
  ERR_UNKNOWN_ENDPOINT: { status: 404, oauthError: 'unknown_endpoint', expose: true },
  ERR_METHOD_NOT_ALLOWED: { status: 405, oauthError: 'method_not_allowed', expose: true },
  ERR_CONFLICT: conflict,
  ERR_CLIENT_EXISTS: conflict,
  ERR_RESOURCE_EXISTS: conflict,
  ERR_UPSTREAM_EXISTS: conflict,
  ERR_IDENTITY_TAKEN: conflict,
  ERR_EMAIL_TAKEN: { status: 409, oauthError: 'email_taken', expose: true },
  ERR_SECOND_FACTOR_UNAVAILABLE: { status: 409, oauthError: 'second_factor_unavailable', expose: true },
  ERR_BODY_TOO_LARGE: { status: 413, oauthError: 'request_too_large', expose: true },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, oauthError: 'unsupported_media_type', expose: true },
  // RFC 9110 section 15.5.16: say which content coding is accepted.
  ERR_UNSUPPORTED_ENCODING: { status: 415, oauthError: 'unsupported_encoding', expose: true, headers: { 'Accept-Encoding': 'identity' } },
  ERR_MISDIRECTED: { status: 421, oauthError: 'misdirected', expose: true },
  ERR_RATE_LIMITED: { status: 429, oauthError: 'rate_limited', expose: true },
});

export interface AppErrorOptions {
  cause?: unknown;
  /** Per field (wire names), what is wrong with it: shown beside the field on pages, `fields` in JSON. */
  fields?: Record<string, string> | undefined;
  /** Headers this answer needs besides the code's own (Allow, a Bearer challenge). */
  headers?: Record<string, string>;
  /** Retry-After, in seconds, when it depends on the case (a rate limit's window). */
  retryAfterSeconds?: number;
}

export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly status: number;
  readonly expose: boolean;
  readonly fields: Record<string, string> | undefined;
  readonly headers: Record<string, string>;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: AppErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    const meaning = ERROR_TABLE[code];
    this.status = meaning.status;
    this.expose = meaning.expose;
    this.fields = options.fields;
    this.headers = { ...meaning.headers, ...options.headers };
    this.retryAfterSeconds = options.retryAfterSeconds ?? meaning.retryAfterSeconds;
  }
}

export function isAppError(error: unknown, code?: AppErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}

/** The 429 of every rate limit: Retry-After is the limit's own window, rounded up to whole seconds. */
export function rateLimited(msBeforeNext: number, message?: string): AppError {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new AppError('ERR_RATE_LIMITED', message?.replace('{seconds}', String(seconds)) ?? `Too many attempts. Try again in ${waitInWords(seconds)}.`, { retryAfterSeconds: seconds });
}

function waitInWords(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { error: string; error_description: string; fields?: Record<string, string> };
  /**
   * How the failure goes to the log: `error` for anything not meant for the caller (a bug), `warn`
   * for a store outage (not a bug, and over by itself), nothing for a refusal of bad input.
   */
  readonly log: 'error' | 'warn' | undefined;
}

export interface AnswerOptions {
  /** The body limit of the parser that refused a body, for the 413's description. */
  readonly bodyLimit?: string;
}

/** What Koa's body parsers (http-errors) and oidc-provider's errors carry. */
interface HttpishError {
  error?: unknown;
  error_description?: unknown;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
  type?: unknown;
}

/**
 * Any caught error, as the answer every surface sends (as JSON, or as the error page's words).
 * AppErrors answer from the table; a 503 from anywhere is the store outage's answer; a body
 * parser's 413 and 415 are ours too; other 4xx that are not Tessera's (oidc-provider's errors met
 * outside its endpoints, a parser's refusal) keep their status and OAuth name; everything else is
 * a plain 500.
 */
export function errorAnswer(caught: unknown, options: AnswerOptions = {}): ErrorAnswer {
  const error = caught instanceof AppError ? caught : fromForeign(caught, options);
  if (!(error instanceof AppError)) return error;
  const meaning = ERROR_TABLE[error.code];
  const retryAfter = error.retryAfterSeconds;
  return {
    status: meaning.status,
    headers: { ...error.headers, ...(retryAfter !== undefined && { 'Retry-After': String(retryAfter) }) },
    body: {
      error: meaning.oauthError,
      error_description: meaning.expose ? error.message : meaning.publicText ?? ON_OUR_SIDE,
      ...(error.fields && { fields: error.fields }),
    },
    log: error.code === 'ERR_STORE_UNAVAILABLE' ? 'warn' : meaning.expose ? undefined : 'error',
  };
}

function fromForeign(caught: unknown, { bodyLimit }: AnswerOptions): AppError | ErrorAnswer {
  const error = (caught ?? {}) as HttpishError;
  const status = typeof error.status === 'number' ? error.status : typeof error.statusCode === 'number' ? error.statusCode : 500;
  const message = typeof error.message === 'string' ? error.message : '';
  // oidc-provider's TemporarilyUnavailable from the adapter, or a store error wrapped on its way.
  if (status === 503) return new AppError('ERR_STORE_UNAVAILABLE', message, { cause: caught });
  if (status < 400 || status >= 500 || error.expose === false) return new AppError('ERR_INTERNAL', message, { cause: caught });
  if (status === 413) return new AppError('ERR_BODY_TOO_LARGE', bodyLimit ? `The body is limited to ${bodyLimit}` : 'The request body is too large.', { cause: caught });
  if (status === 415) return new AppError('ERR_UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json (UTF-8)', { cause: caught });
  const description = typeof error.error_description === 'string' ? error.error_description
    : error.type === 'entity.parse.failed' ? 'The body is not valid JSON'
      : message || 'The request was not valid.';
  return {
    status,
    headers: {},
    body: { error: typeof error.error === 'string' ? error.error : 'invalid_request', error_description: description },
    log: undefined,
  };
}
