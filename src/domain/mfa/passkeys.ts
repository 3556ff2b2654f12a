/**
 * Passkeys (WebAuthn) with @simplewebauthn/server. Every ceremony starts with a random challenge
 * kept in the store for five minutes and taken (read and deleted) when the browser answers, so a
 * challenge works once, and only for the account, purpose and sign-in it was made for.
 *
 * Credentials are discoverable (resident), so a passkey can sign someone in without an email: the
 * authenticator returns the user handle, which is the account's `sub`.
 */
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { z } from 'zod';

import { AppError } from '../../errors.ts';
import type { Account, AccountRepository, OidcStore, Passkey } from '../../store/port.ts';
import type { PasskeyStorage } from './assurance.ts';

// Loaded at the first passkey ceremony, not at startup: it is the largest library Tessera has
// (about 5 MB of a server's memory), and most servers never see a passkey.
const webauthn = () => import('@simplewebauthn/server');

const CHALLENGE_MODEL = 'WebAuthnChallenge';
const CEREMONY_SECONDS = 300;
export const MAX_PASSKEYS = 20;
const NAME_MAX_LENGTH = 60;

export interface PasskeySettings {
  /** The relying party id: the issuer's host name unless configured (WEBAUTHN_RP_ID). */
  rpId: string;
  rpName: string;
  /** The issuer's origin: the only one a browser may answer from. */
  origin: string;
}

/** Who a ceremony is for: the signed-in account (`sub`), the sign-in in progress (`uid`), or both. */
export interface CeremonyBinding {
  sub?: string | undefined;
  uid?: string | undefined;
}

interface ChallengeRecord {
  [key: string]: unknown;
  purpose: 'register' | 'authenticate';
  sub?: string | undefined;
  uid?: string | undefined;
  userVerification: 'required' | 'preferred';
}

export interface PasskeyAuthentication {
  sub: string;
  /** The account the passkey belongs to, as read before this sign-in's counter update. */
  account: Account;
  credentialId: string;
  userVerified: boolean;
  storage: PasskeyStorage;
}

const base64url = z.string().max(8192).regex(/^[A-Za-z0-9_-]*$/, 'not base64url');

const registrationSchema = z.looseObject({
  id: base64url.min(1),
  rawId: base64url.min(1),
  type: z.literal('public-key'),
  response: z.looseObject({
    clientDataJSON: base64url,
    attestationObject: base64url,
    transports: z.array(z.string().max(32)).max(10).optional(),
  }),
  clientExtensionResults: z.looseObject({}).default({}),
  authenticatorAttachment: z.string().max(32).optional(),
});

const authenticationSchema = z.looseObject({
  id: base64url.min(1),
  rawId: base64url.min(1),
  type: z.literal('public-key'),
  response: z.looseObject({
    clientDataJSON: base64url,
    authenticatorData: base64url,
    signature: base64url,
    userHandle: base64url.optional(),
  }),
  clientExtensionResults: z.looseObject({}).default({}),
  authenticatorAttachment: z.string().max(32).optional(),
});

function refused(message = 'That passkey could not be used. Try again, or choose another way.', cause?: unknown): AppError {
  return new AppError('ERR_SECOND_FACTOR_INVALID', message, { cause });
}

/** The browser's answer arrives as JSON text in a form field. */
function parseResponse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  if (typeof input !== 'string' || !input || input.length > 16_384) throw refused();
  let json: unknown;
  try {
    json = JSON.parse(input);
  } catch (error) {
    throw refused(undefined, error);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw refused(undefined, parsed.error);
  return parsed.data;
}

function challengeOf(clientDataJSON: string): string {
  try {
    const challenge = (JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown }).challenge;
    if (typeof challenge === 'string' && challenge.length <= 512) return challenge;
  } catch {
    // falls through to the refusal
  }
  throw refused();
}

export function passkeyName(input: unknown, existing: readonly Passkey[]): string {
  const given = typeof input === 'string' ? input.normalize('NFC').replace(/\s+/g, ' ').trim().slice(0, NAME_MAX_LENGTH) : '';
  return given || `Passkey ${existing.length + 1}`;
}

export class Passkeys {
  readonly #accounts: AccountRepository;
  readonly #oidc: OidcStore;
  readonly #settings: PasskeySettings;

  constructor(accounts: AccountRepository, oidc: OidcStore, settings: PasskeySettings) {
    this.#accounts = accounts;
    this.#oidc = oidc;
    this.#settings = settings;
  }

  async registrationOptions(account: Account, binding: CeremonyBinding = {}): Promise<PublicKeyCredentialCreationOptionsJSON> {
    if (account.passkeys.length >= MAX_PASSKEYS) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', `An account can have at most ${MAX_PASSKEYS} passkeys; remove one first.`);
    }
    const options = await (await webauthn()).generateRegistrationOptions({
      rpName: this.#settings.rpName,
      rpID: this.#settings.rpId,
      userName: account.email,
      userID: new TextEncoder().encode(account.sub),
      userDisplayName: account.name ?? account.email,
      timeout: CEREMONY_SECONDS * 1000,
      attestationType: 'none',
      excludeCredentials: account.passkeys.map((passkey) => ({ id: passkey.credentialId, ...(passkey.transports && { transports: passkey.transports }) })),
      authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
    });
    await this.#remember(options.challenge, { purpose: 'register', sub: account.sub, uid: binding.uid, userVerification: 'preferred' });
    return options;
  }

  /** Verifies the browser's answer and stores the new passkey. */
  async verifyRegistration(account: Account, input: unknown, name?: unknown, binding: CeremonyBinding = {}): Promise<{ passkey: Passkey; storage: PasskeyStorage }> {
    const response = parseResponse(registrationSchema, input) as unknown as RegistrationResponseJSON;
    const challenge = challengeOf(response.response.clientDataJSON);
    const record = await this.#take(challenge);
    if (!record || record.purpose !== 'register' || record.sub !== account.sub || record.uid !== binding.uid) throw refused();
    let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verification = await (await webauthn()).verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#settings.origin,
        expectedRPID: this.#settings.rpId,
        requireUserVerification: false,
      });
    } catch (error) {
      throw refused(undefined, error);
    }
    if (!verification.verified) throw refused();
    const { credential } = verification.registrationInfo;
    const fresh = await this.#accounts.findBySub(account.sub);
    if (!fresh) throw new AppError('ERR_NOT_FOUND', 'There is no such account.');
    if (fresh.passkeys.some((passkey) => passkey.credentialId === credential.id)) {
      throw new AppError('ERR_SECOND_FACTOR_UNAVAILABLE', 'This passkey is already registered.');
    }
    const passkey: Passkey = {
      credentialId: credential.id,
      publicKey: Buffer.from(credential.publicKey).toString('base64url'),
      counter: credential.counter,
      ...(credential.transports?.length && { transports: [...credential.transports] }),
      name: passkeyName(name, fresh.passkeys),
      createdAt: new Date(),
    };
    await this.#accounts.update(account.sub, { passkeys: [...fresh.passkeys, passkey] });
    return { passkey, storage: verification.registrationInfo.credentialDeviceType === 'multiDevice' ? 'synced' : 'device-bound' };
  }

  /**
   * Options for signing in. With a `sub` (a second factor after the password) the browser is told
   * which credentials count; without one (passwordless) any discoverable credential for this site
   * may answer, and user verification is required, since the passkey is then the only factor.
   */
  async authenticationOptions(account: Account | undefined, binding: CeremonyBinding): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const userVerification = account ? 'preferred' : 'required';
    const options = await (await webauthn()).generateAuthenticationOptions({
      rpID: this.#settings.rpId,
      timeout: CEREMONY_SECONDS * 1000,
      userVerification,
      ...(account && {
        allowCredentials: account.passkeys.map((passkey) => ({ id: passkey.credentialId, ...(passkey.transports && { transports: passkey.transports }) })),
      }),
    });
    await this.#remember(options.challenge, { purpose: 'authenticate', sub: account?.sub, uid: binding.uid, userVerification });
    return options;
  }

  /** Verifies a signed challenge and moves the credential's signature counter forward. */
  async verifyAuthentication(input: unknown, binding: CeremonyBinding): Promise<PasskeyAuthentication> {
    const response = parseResponse(authenticationSchema, input) as unknown as AuthenticationResponseJSON;
    const challenge = challengeOf(response.response.clientDataJSON);
    const record = await this.#take(challenge);
    if (!record || record.purpose !== 'authenticate' || record.sub !== binding.sub || record.uid !== binding.uid) throw refused();

    const sub = binding.sub ?? userHandleSub(response.response.userHandle);
    const account = sub ? await this.#accounts.findBySub(sub) : undefined;
    const passkey = account?.passkeys.find((candidate) => candidate.credentialId === response.id);
    if (!account || account.disabled || !passkey) throw refused('This passkey is not registered here. Sign in with your password instead.');

    let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verification = await (await webauthn()).verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#settings.origin,
        expectedRPID: this.#settings.rpId,
        credential: {
          id: passkey.credentialId,
          publicKey: new Uint8Array(Buffer.from(passkey.publicKey, 'base64url')),
          counter: passkey.counter,
          ...(passkey.transports && { transports: passkey.transports as never }),
        },
        requireUserVerification: record.userVerification === 'required',
      });
    } catch (error) {
      throw refused(undefined, error);
    }
    if (!verification.verified) throw refused();
    const { newCounter, userVerified, credentialDeviceType } = verification.authenticationInfo;
    // Only this credential's counter, and only if it is still there: writing back the list read
    // above would bring back a passkey its owner removed while this sign-in was in flight.
    if (!await this.#accounts.recordPasskeyUse(account.sub, passkey.credentialId, newCounter, new Date())) {
      throw refused('This passkey is not registered here. Sign in with your password instead.');
    }
    return { sub: account.sub, account, credentialId: passkey.credentialId, userVerified, storage: credentialDeviceType === 'multiDevice' ? 'synced' : 'device-bound' };
  }

  async #remember(challenge: string, record: ChallengeRecord): Promise<void> {
    await this.#oidc.upsert(CHALLENGE_MODEL, challenge, record, CEREMONY_SECONDS);
  }

  async #take(challenge: string): Promise<ChallengeRecord | undefined> {
    return await this.#oidc.take(CHALLENGE_MODEL, challenge) as ChallengeRecord | undefined;
  }
}

function userHandleSub(userHandle: string | undefined): string | undefined {
  if (!userHandle) return undefined;
  const sub = Buffer.from(userHandle, 'base64url').toString('utf8');
  return /^[\x21-\x7e]{1,255}$/.test(sub) ? sub : undefined;
}
