/**
 * Password hashing with argon2id. The verify is the one deliberate cost of a login, so it runs
 * exactly once per attempt: against the account's hash, or against a decoy hash when there is no
 * account, so an unknown email costs the same time as a wrong password.
 */
import * as argon2 from 'argon2';

import type { Argon2Parameters } from '../config.ts';

export class PasswordHasher {
  readonly #options: { type: typeof argon2.argon2id; memoryCost: number; timeCost: number; parallelism: number };
  #decoy: Promise<string> | undefined;

  constructor(parameters: Argon2Parameters) {
    this.#options = {
      type: argon2.argon2id,
      memoryCost: parameters.memoryKiB,
      timeCost: parameters.timeCost,
      parallelism: parameters.parallelism,
    };
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, this.#options);
  }

  /** Never throws on a malformed stored hash: that is a failed verification, not a server error. */
  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }

  /** Burns the same time as a real verify, for callers that have no account to check against. */
  async verifyDecoy(password: string): Promise<false> {
    this.#decoy ??= this.hash('tessera decoy password that never matches');
    await this.verify(await this.#decoy, password);
    return false;
  }

  /** True when the hash was made with other parameters than the configured ones. */
  needsRehash(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, this.#options);
    } catch {
      return true;
    }
  }
}
