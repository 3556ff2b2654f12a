/**
 * The AppErrors both store backends raise, built in one place so the two speak with one voice
 * and the contract suite can hold them to the same codes.
 */
import { AppError } from '../errors.ts';

export function emailTakenError(cause?: unknown): AppError {
  return new AppError('ERR_EMAIL_TAKEN', 'This email address is already registered.', { status: 409, cause });
}

export function clientIdTakenError(clientId: string, cause?: unknown): AppError {
  return new AppError('ERR_CLIENT_INVALID', `A client with the id ${JSON.stringify(clientId)} already exists.`, { status: 409, cause });
}

export function resourceAudienceTakenError(audience: string, cause?: unknown): AppError {
  return new AppError('ERR_RESOURCE_INVALID', `A resource server with the audience ${JSON.stringify(audience)} already exists.`, { status: 409, cause });
}

export function upstreamIdTakenError(id: string, cause?: unknown): AppError {
  return new AppError('ERR_UPSTREAM_INVALID', `An upstream provider with the id ${JSON.stringify(id)} already exists.`, { status: 409, cause });
}

export function identityTakenError(cause?: unknown): AppError {
  return new AppError('ERR_IDENTITY_TAKEN', 'This upstream identity is already linked to an account.', { status: 409, cause });
}

/** Anything below the port failing for reasons the caller cannot fix; never shown to clients. */
export function storeUnavailableError(message: string, cause?: unknown): AppError {
  return new AppError('ERR_STORE_UNAVAILABLE', message, { status: 503, expose: false, cause });
}
