/**
 * A sign-in between its password and its second factor. What the password proved is kept in the
 * store under the interaction's uid (itself bound to the browser by oidc-provider's cookie), never
 * in a form field, and the sign-in completes only from here.
 */
import type { OidcStore } from '../../store/port.ts';
import type { Sealer } from '../sealed.ts';
import type { Assurance } from './assurance.ts';

const MODEL = 'PendingSignIn';
export const PENDING_SIGN_IN_SECONDS = 900;

export interface PendingSignIn {
  sub: string;
  /** What is proved so far, e.g. ["pwd"]; for a step-up, what the session had. */
  amr: string[];
  /** `second-factor`: prove one; `enrol`: set one up first; `done`: proved, showing new recovery codes. */
  stage: 'second-factor' | 'enrol' | 'done';
  /** Set at `done`: what the finished sign-in proved. */
  assurance?: Assurance;
  /** New recovery codes to show once, sealed (stage `done`). */
  sealedRecoveryCodes?: string;
}

export class PendingSignIns {
  readonly #oidc: OidcStore;
  readonly #sealer: Sealer;

  constructor(oidc: OidcStore, sealer: Sealer) {
    this.#oidc = oidc;
    this.#sealer = sealer;
  }

  async hold(uid: string, pending: PendingSignIn): Promise<void> {
    await this.#oidc.upsert(MODEL, uid, { ...pending }, PENDING_SIGN_IN_SECONDS);
  }

  async find(uid: string): Promise<PendingSignIn | undefined> {
    const payload = await this.#oidc.find(MODEL, uid);
    if (!payload || typeof payload.sub !== 'string' || !Array.isArray(payload.amr)) return undefined;
    return payload as unknown as PendingSignIn;
  }

  /** Read and delete at once: a sign-in completes once. */
  async take(uid: string): Promise<PendingSignIn | undefined> {
    const payload = await this.#oidc.take(MODEL, uid);
    if (!payload || typeof payload.sub !== 'string' || !Array.isArray(payload.amr)) return undefined;
    return payload as unknown as PendingSignIn;
  }

  async discard(uid: string): Promise<void> {
    await this.#oidc.destroy(MODEL, uid);
  }

  sealRecoveryCodes(uid: string, codes: string[]): string {
    return this.#sealer.seal(JSON.stringify(codes), uid);
  }

  openRecoveryCodes(uid: string, sealed: string): string[] {
    return JSON.parse(this.#sealer.open(sealed, uid)) as string[];
  }
}
