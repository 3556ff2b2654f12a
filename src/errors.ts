/**
 * The one application error type. Protocol errors come from oidc-provider; everything Tessera itself
 * refuses is an AppError with a stable `code` that callers switch on and tests assert on.
 * `expose` says whether the message may be shown to the person or client (Koa's convention).
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
  | 'ERR_RESOURCE_INVALID'
  /** An upstream identity provider's settings were refused (bad issuer, taken id, ...). */
  | 'ERR_UPSTREAM_INVALID'
  /** Signing in through an upstream provider failed (it refused, timed out, or answered wrongly). */
  | 'ERR_UPSTREAM_FAILED'
  /** That upstream identity is already linked to an account. */
  | 'ERR_IDENTITY_TAKEN'
  | 'ERR_CERTIFICATE_INVALID'
  | 'ERR_SECRET'
  | 'ERR_STORE_UNAVAILABLE'
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
  | 'ERR_SECOND_FACTOR_UNAVAILABLE';

export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: AppErrorCode, message: string, options: { status?: number; expose?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = options.status ?? 400;
    this.expose = options.expose ?? this.status < 500;
  }
}

export function isAppError(error: unknown, code?: AppErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}
