/**
 * Initial access tokens for dynamic client registration (RFC 7591 section 3, with
 * DYNAMIC_CLIENT_REGISTRATION=token): `tessera registration-tokens create [--uses N] [--ttl SECONDS]`.
 * The token is written as oidc-provider's InitialAccessToken record, keyed like every record the
 * adapter keeps (the SHA-256 of the value, oidc/adapter.ts storeKey), so the store never holds the
 * working token. A limited number of uses travels in the record; oidc-provider's registration
 * counts them atomically (oidc/features/registration.ts).
 */
import { createHash } from 'node:crypto';

import { AppError } from '../errors.ts';
import type { OidcStore } from '../store/port.ts';
import type { SecurityEvents } from './events.ts';
import { randomId } from './random.ts';

export const REGISTRATION_TOKEN_MODEL = 'InitialAccessToken';
export const DEFAULT_REGISTRATION_TOKEN_TTL_SECONDS = 86_400;
export const MAX_REGISTRATION_TOKEN_TTL_SECONDS = 365 * 86_400;
export const MAX_REGISTRATION_TOKEN_USES = 1_000_000;
/** The registration policy a token with limited uses names (oidc-provider runs it at each registration). */
export const TOKEN_USES_POLICY = 'tessera-token-uses';
/** Where the number of uses travels in the token's record (oidc/internals.ts keeps it in the payload). */
export const TOKEN_USES_FIELD = 'tessera_uses';

export interface NewRegistrationToken {
  /** How many registrations it allows; unlimited (until it expires) when absent. */
  uses?: number | undefined;
  ttlSeconds?: number | undefined;
}

export interface CreatedRegistrationToken {
  token: string;
  expiresAt: Date;
  uses?: number;
}

export class RegistrationTokens {
  readonly #oidc: OidcStore;
  readonly #events: SecurityEvents;

  constructor(oidc: OidcStore, events: SecurityEvents) {
    this.#oidc = oidc;
    this.#events = events;
  }

  async create({ uses, ttlSeconds = DEFAULT_REGISTRATION_TOKEN_TTL_SECONDS }: NewRegistrationToken): Promise<CreatedRegistrationToken> {
    const problems: string[] = [];
    if (uses !== undefined && (!Number.isInteger(uses) || uses < 1 || uses > MAX_REGISTRATION_TOKEN_USES)) problems.push(`uses must be a whole number from 1 to ${MAX_REGISTRATION_TOKEN_USES}`);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_REGISTRATION_TOKEN_TTL_SECONDS) problems.push(`the lifetime must be from 1 to ${MAX_REGISTRATION_TOKEN_TTL_SECONDS} seconds`);
    if (problems.length) throw new AppError('ERR_INVALID_INPUT', problems.join('; '));
    const token = randomId(32);
    const digest = createHash('sha256').update(token).digest('base64url');
    const iat = Math.floor(Date.now() / 1000);
    await this.#oidc.upsert(REGISTRATION_TOKEN_MODEL, digest, {
      jti: digest,
      kind: REGISTRATION_TOKEN_MODEL,
      iat,
      exp: iat + ttlSeconds,
      ...(uses !== undefined && { policies: [TOKEN_USES_POLICY], [TOKEN_USES_FIELD]: uses }),
    }, ttlSeconds);
    this.#events.emit({ type: 'registration_token.created', details: { uses: uses ?? 'unlimited', ttlSeconds } });
    return { token, expiresAt: new Date((iat + ttlSeconds) * 1000), ...(uses !== undefined && { uses }) };
  }
}
