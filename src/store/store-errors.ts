/**
 * The AppErrors both store backends raise, built in one place so the two speak with one voice
 * and the contract suite can hold them to the same codes.
 */
import { AppError } from '../errors.ts';

export function emailTakenError(cause?: unknown): AppError {
  return new AppError('ERR_EMAIL_TAKEN', 'This email address is already registered.', { cause });
}

export function clientIdTakenError(clientId: string, cause?: unknown): AppError {
  return new AppError('ERR_CLIENT_EXISTS', `A client with the id ${JSON.stringify(clientId)} already exists.`, { cause });
}

export function resourceAudienceTakenError(audience: string, cause?: unknown): AppError {
  return new AppError('ERR_RESOURCE_EXISTS', `A resource server with the audience ${JSON.stringify(audience)} already exists.`, { cause });
}

export function upstreamIdTakenError(id: string, cause?: unknown): AppError {
  return new AppError('ERR_UPSTREAM_EXISTS', `An upstream provider with the id ${JSON.stringify(id)} already exists.`, { cause });
}

export function identityTakenError(cause?: unknown): AppError {
  return new AppError('ERR_IDENTITY_TAKEN', 'This upstream identity is already linked to an account.', { cause });
}

/** Anything below the port failing for reasons the caller cannot fix; never shown to clients. */
export function storeUnavailableError(message: string, cause?: unknown): AppError {
  return new AppError('ERR_STORE_UNAVAILABLE', message, { cause });
}
