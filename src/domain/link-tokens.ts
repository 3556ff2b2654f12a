/**
 * Single-use tokens for links sent by email (email verification, password reset). The link carries
 * 256 random bits; the store keeps only their SHA-256 digest, under a model of its own in the
 * generic OIDC record store, with an expiry. Redeeming is the store's atomic take, so under any race
 * exactly one request gets the record, and a second use of a link finds nothing.
 */
import { createHash } from 'node:crypto';

import type { OidcPayload, OidcStore } from '../store/port.ts';
import { randomId } from './random.ts';

export type LinkTokenModel = 'EmailVerification' | 'PasswordReset';

export interface LinkTokenPayload extends OidcPayload {
  accountId: string;
  /** The address the link was sent to: a link for an address the account no longer has is dead. */
  email: string;
}

/** A token as it appears in a link: 43 base64url characters. Anything else is not worth a lookup. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class LinkTokens {
  readonly #oidc: OidcStore;
  readonly #model: LinkTokenModel;
  readonly ttlSeconds: number;

  constructor(oidc: OidcStore, model: LinkTokenModel, ttlSeconds: number) {
    this.#oidc = oidc;
    this.#model = model;
    this.ttlSeconds = ttlSeconds;
  }

  /** Stores a new token's digest and returns the token, for the link. */
  async issue(payload: LinkTokenPayload): Promise<string> {
    const token = randomId(32);
    await this.#oidc.upsert(this.#model, digest(token), { ...payload, iat: Math.floor(Date.now() / 1000) }, this.ttlSeconds);
    return token;
  }

  /** Reads a live token without using it up (to show the form a link leads to). */
  async peek(token: string): Promise<LinkTokenPayload | undefined> {
    if (!TOKEN_SHAPE.test(token)) return undefined;
    return asPayload(await this.#oidc.find(this.#model, digest(token)));
  }

  /** Uses the token up; undefined when it is unknown, expired or already used. */
  async redeem(token: string): Promise<LinkTokenPayload | undefined> {
    if (!TOKEN_SHAPE.test(token)) return undefined;
    return asPayload(await this.#oidc.take(this.#model, digest(token)));
  }

  /** Ends every live token of an account (e.g. all reset links once the password has changed). */
  async revokeAll(accountId: string): Promise<void> {
    for (const { id } of await this.#oidc.findByAccountId(this.#model, accountId)) await this.#oidc.destroy(this.#model, id);
  }
}

function asPayload(payload: OidcPayload | undefined): LinkTokenPayload | undefined {
  return payload && typeof payload.accountId === 'string' && typeof payload.email === 'string' ? payload as LinkTokenPayload : undefined;
}
