/**
 * Signing and cookie keys. Generated on first start, kept in the store with private parts encrypted
 * (AES-256-GCM under a key derived from the master secret), rotated on demand. A retired signing key
 * stays in the JWKS until every token it signed has expired, so validators never meet an unknown kid
 * for a live token.
 */
import { generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';

import { AppError } from '../errors.ts';
import type { KeyRepository, StoredKey } from '../store/port.ts';
import { NO_SECURITY_EVENTS, type SecurityEvents } from './events.ts';
import { Sealer } from './sealed.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** One signing key per family: RSA serves RS256 and PS256, P-256 serves ES256, Ed25519 serves EdDSA. */
const SIGNING_FAMILIES = [
  { alg: 'RS256', generate: () => generateKeyPairAsync('rsa', { modulusLength: 2048 }) },
  { alg: 'ES256', generate: () => generateKeyPairAsync('ec', { namedCurve: 'P-256' }) },
  { alg: 'EdDSA', generate: () => generateKeyPairAsync('ed25519') },
] as const;

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];

/**
 * Throwaway key material of every family Tessera signs with, never stored or published: for an
 * oidc-provider instance that only checks client metadata (the signing algorithms a client may name
 * follow the key families), so that check needs neither the store's keys nor TESSERA_SECRET.
 */
export async function throwawayKeyMaterial(): Promise<KeyMaterial> {
  const signingKeys = await Promise.all(SIGNING_FAMILIES.map(async ({ alg, generate }) => {
    const { privateKey } = (await generate()) as { privateKey: KeyObject };
    return { ...(privateKey.export({ format: 'jwk' }) as JWK), kid: `throwaway-${alg}`, use: 'sig' };
  }));
  return { signingKeys, cookieKeys: [randomBytes(32).toString('base64url')], fingerprint: 'throwaway' };
}

export interface KeyMaterial {
  /** Private JWKs for oidc-provider: current keys first, so they are the ones that sign. */
  readonly signingKeys: JWK[];
  /** Cookie signing keys, newest first (keygrip signs with the first and verifies with all). */
  readonly cookieKeys: string[];
  /** Changes whenever the set of keys changes; cheap to compare. */
  readonly fingerprint: string;
}

/** What `tessera keys list` shows; snake_case like every other JSON Tessera prints. */
export interface KeySummary {
  kid: string;
  alg: string;
  use: string;
  status: 'current' | 'retired';
  created_at: string;
  retired_at?: string;
  expires_at?: string;
}

export class KeyService {
  readonly #keys: KeyRepository;
  readonly #sealer: Sealer;
  readonly #retainSeconds: number;
  readonly #events: SecurityEvents;

  /**
   * @param retainSeconds how long a retired signing key stays published: the longest lifetime of
   *   anything it signs (ID tokens, JWT access tokens) plus clock skew.
   */
  constructor(keys: KeyRepository, masterSecret: string, retainSeconds: number, events: SecurityEvents = NO_SECURITY_EVENTS) {
    this.#keys = keys;
    this.#sealer = new Sealer(masterSecret, 'key encryption');
    this.#retainSeconds = retainSeconds;
    this.#events = events;
  }

  /** Generates whatever is missing on first start: a signing key per family and a cookie key. */
  async ensure(): Promise<void> {
    const current = (await this.#keys.list()).filter((key) => !key.retiredAt);
    const add: StoredKey[] = [];
    if (!current.some((key) => key.use === 'sig')) add.push(...(await this.#generateSigningKeys()));
    if (!current.some((key) => key.use === 'cookie')) add.push(this.#generateCookieKey());
    if (add.length) {
      await this.#keys.rotate(add, this.#retirement());
      this.#events.emit({ type: 'key.rotated', details: { kids: add.map((key) => key.kid), uses: [...new Set(add.map((key) => key.use))], initial: true } });
    }
  }

  /** Switches signing to fresh keys; the previous ones stay in the JWKS until their tokens have expired. */
  async rotate(): Promise<StoredKey[]> {
    const add = await this.#generateSigningKeys();
    await this.#keys.rotate(add, this.#retirement());
    this.#events.emit({ type: 'key.rotated', details: { kids: add.map((key) => key.kid), uses: ['sig'] } });
    return add;
  }

  async list(): Promise<KeySummary[]> {
    return (await this.#keys.list()).map((key) => ({
      kid: key.kid,
      alg: key.alg,
      use: key.use,
      status: key.retiredAt ? 'retired' : 'current',
      created_at: key.createdAt.toISOString(),
      ...(key.retiredAt && { retired_at: key.retiredAt.toISOString() }),
      ...(key.expiresAt && { expires_at: key.expiresAt.toISOString() }),
    }));
  }

  async material(): Promise<KeyMaterial> {
    const keys = await this.#keys.list();
    // Current before retired, newest first within each: oidc-provider signs with the first usable key.
    const ordered = [...keys].sort((a, b) =>
      Number(Boolean(a.retiredAt)) - Number(Boolean(b.retiredAt)) || b.createdAt.getTime() - a.createdAt.getTime());
    const signingKeys = ordered
      .filter((key) => key.use === 'sig')
      .map((key) => ({ ...(JSON.parse(this.#decrypt(key)) as JWK), kid: key.kid, use: 'sig' }));
    const cookieKeys = ordered.filter((key) => key.use === 'cookie').map((key) => this.#decrypt(key));
    if (!signingKeys.length || !cookieKeys.length) {
      throw new AppError('ERR_SECRET', 'No keys in the store yet; start the server once or run `tessera keys rotate`');
    }
    const fingerprint = ordered.map((key) => `${key.kid}:${key.retiredAt ? 'r' : 'c'}`).join(',');
    return { signingKeys, cookieKeys, fingerprint };
  }

  async #generateSigningKeys(): Promise<StoredKey[]> {
    const createdAt = new Date();
    return Promise.all(SIGNING_FAMILIES.map(async ({ alg, generate }) => {
      const { privateKey } = (await generate()) as { privateKey: KeyObject };
      const privateJwk = privateKey.export({ format: 'jwk' }) as JWK;
      const publicJwk = Object.fromEntries(Object.entries(privateJwk).filter(([name]) => !PRIVATE_JWK_MEMBERS.includes(name)));
      const kid = await calculateJwkThumbprint(publicJwk as JWK);
      return {
        kid,
        use: 'sig' as const,
        alg,
        publicJwk: { ...publicJwk, kid, use: 'sig' },
        encryptedPrivate: this.#encrypt(JSON.stringify(privateJwk), kid),
        createdAt,
      };
    }));
  }

  #generateCookieKey(): StoredKey {
    const kid = `cookie-${randomBytes(8).toString('base64url')}`;
    return {
      kid,
      use: 'cookie',
      alg: '',
      encryptedPrivate: this.#encrypt(randomBytes(32).toString('base64url'), kid),
      createdAt: new Date(),
    };
  }

  #retirement(): { retiredAt: Date; expiresAt: Date } {
    const now = Date.now();
    return { retiredAt: new Date(now), expiresAt: new Date(now + this.#retainSeconds * 1000) };
  }

  #encrypt(plaintext: string, kid: string): string {
    return this.#sealer.seal(plaintext, kid);
  }

  #decrypt(key: StoredKey): string {
    try {
      return this.#sealer.open(key.encryptedPrivate, key.kid);
    } catch (error) {
      throw new AppError('ERR_SECRET', `Key ${key.kid} cannot be decrypted: TESSERA_SECRET differs from the one that encrypted it`, { cause: error });
    }
  }
}
