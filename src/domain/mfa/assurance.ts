/**
 * What a sign-in proved, in the two vocabularies relying parties read from the ID token:
 * `amr` (RFC 8176 authentication method reference values) and `acr` (Tessera's two levels).
 *
 * - password alone: amr ["pwd"], acr loa:1;
 * - an upstream provider alone: ["fed"], acr loa:1 (with a second factor: ["fed", "otp", "mfa"] and so on);
 * - password + TOTP or recovery code: ["pwd", "otp", "mfa"] (a recovery code is a pre-issued one-time password);
 * - password + emailed code: ["pwd", "otp", "mca", "mfa"] (the code travels over a second channel);
 * - password + passkey: ["pwd", "hwk" | "swk", "user", "mfa"];
 * - passkey alone, with user verification (PIN or biometric on the device): ["hwk" | "swk", "user", "mfa"].
 * "hwk" when the credential is bound to one device, "swk" when it is a synced (backed-up) passkey.
 * Everything that says "mfa" is acr loa:2.
 */

export const ACR_SINGLE_FACTOR = 'urn:tessera:loa:1';
export const ACR_MULTI_FACTOR = 'urn:tessera:loa:2';
export const ACR_VALUES = [ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR] as const;

export type SecondFactorMethod = 'totp' | 'recovery-code' | 'email-code' | 'passkey';

/** The reason oidc-provider's login prompt gives when a live session lacks the second factor a request needs. */
export const SECOND_FACTOR_REASON = 'second_factor_required';

/** Client metadata that makes every sign-in to that client multi-factor. */
export const REQUIRE_MFA_METADATA = 'tessera_require_mfa';

export interface Assurance {
  amr: string[];
  acr: string;
}

export type PasskeyStorage = 'device-bound' | 'synced';

function passkeyAmr(storage: PasskeyStorage): string[] {
  return [storage === 'synced' ? 'swk' : 'hwk', 'user'];
}

/**
 * Signed in at an upstream provider (Google, GitHub, ...): one factor as far as Tessera knows, whatever
 * the upstream did; "fed" names federated authentication. A second factor adds to it as to a password.
 */
export function upstreamOnly(): Assurance {
  return { amr: ['fed'], acr: ACR_SINGLE_FACTOR };
}

export function passwordOnly(): Assurance {
  return { amr: ['pwd'], acr: ACR_SINGLE_FACTOR };
}

/** `earlier` is what the session (or this interaction) already proved, usually ["pwd"]. */
export function withSecondFactor(earlier: readonly string[], method: SecondFactorMethod, storage: PasskeyStorage = 'device-bound'): Assurance {
  const added = method === 'passkey' ? passkeyAmr(storage) : method === 'email-code' ? ['otp', 'mca'] : ['otp'];
  const amr = [...new Set([...earlier.filter((value) => value !== 'mfa'), ...added]), 'mfa'];
  return { amr, acr: ACR_MULTI_FACTOR };
}

export function passwordlessPasskey(storage: PasskeyStorage): Assurance {
  return { amr: [...passkeyAmr(storage), 'mfa'], acr: ACR_MULTI_FACTOR };
}

/**
 * Whether the authorization request (or the client) demands a multi-factor sign-in: the client has
 * `tessera_require_mfa: true`, or every ACR the request accepts is loa:2. `acr_values` lists the
 * acceptable values, so "loa:1 loa:2" still accepts a password alone; so does the `claims`
 * parameter's `id_token.acr` member (value or values).
 */
export function multiFactorRequired(clientMetadata: Record<string, unknown> | undefined, params: Record<string, unknown>): boolean {
  if (clientMetadata?.[REQUIRE_MFA_METADATA] === true) return true;
  const requested = requestedAcrs(params);
  return requested.includes(ACR_MULTI_FACTOR) && !requested.includes(ACR_SINGLE_FACTOR);
}

function requestedAcrs(params: Record<string, unknown>): string[] {
  const values = typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
  if (typeof params.claims === 'string') {
    try {
      const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { value?: unknown; values?: unknown } } }).id_token?.acr;
      if (typeof acr?.value === 'string') values.push(acr.value);
      if (Array.isArray(acr?.values)) values.push(...acr.values.filter((value): value is string => typeof value === 'string'));
    } catch {
      // oidc-provider refuses an unparsable claims parameter before any of this runs
    }
  }
  return values;
}
