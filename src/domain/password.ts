/**
 * Password hashing with argon2id. The verify is the one deliberate cost of a login, so it runs
 * exactly once per attempt: against the account's hash, or against a decoy hash when there is no
 * account, so an unknown email costs the same time as a wrong password.
 *
 * Each hash or verify holds `memoryKiB` (7 MiB by default) for its duration, and argon2 runs them
 * on libuv's thread pool. At most `concurrency` run at once here (the rest wait their turn, in
 * order): the server passes the smaller of the core count and the pool's size. With more than one
 * per core, throughput does not grow (argon2 is CPU-bound) but memory does, and the threads starve
 * the event loop of its core; and with as many as the pool has threads queued in it, a token
 * signature waits behind every one of them instead of the next to finish.
 */
import { availableParallelism } from 'node:os';

import * as argon2 from 'argon2';

import type { Argon2Parameters } from '../config.ts';
import { hashFamily, verifyImportedHash } from './imported-hashes.ts';

/** A counting semaphore: `run` starts `work` once fewer than `limit` are running, first come first served. */
export class Semaphore {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, Math.floor(limit));
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running += 1;
    try {
      return await work();
    } finally {
      // The slot passes straight to the next in line, so a newcomer cannot overtake it.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }
}

export class PasswordHasher {
  readonly #options: { type: typeof argon2.argon2id; memoryCost: number; timeCost: number; parallelism: number };
  readonly #slots: Semaphore;
  #decoy: Promise<string> | undefined;

  constructor(parameters: Argon2Parameters, concurrency = availableParallelism()) {
    this.#slots = new Semaphore(concurrency);
    this.#options = {
      type: argon2.argon2id,
      memoryCost: parameters.memoryKiB,
      timeCost: parameters.timeCost,
      parallelism: parameters.parallelism,
    };
  }

  hash(password: string): Promise<string> {
    return this.#slots.run(() => argon2.hash(password, this.#options));
  }

  /**
   * Never throws on a malformed stored hash: that is a failed verification, not a server error.
   * An imported hash (bcrypt, scrypt, PBKDF2, crypt(3)'s SHA-crypt and md5-crypt, a legacy digest) is verified with its own algorithm,
   * in the same slots, since bcrypt and scrypt are as heavy as argon2. An account without a
   * password (an empty hash) costs a decoy verify, so it answers like a wrong password, in time too.
   */
  async verify(hash: string, password: string): Promise<boolean> {
    const family = hashFamily(hash);
    if (family === undefined && hash === '') return this.verifyDecoy(password);
    try {
      if (family !== undefined && family !== 'argon2id' && family !== 'argon2i') return await this.#slots.run(() => verifyImportedHash(hash, password));
      return await this.#slots.run(() => argon2.verify(hash, password));
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

  /** True when the hash is not argon2id (an imported one), or was made with other parameters than the configured ones. */
  needsRehash(hash: string): boolean {
    if (hashFamily(hash) !== 'argon2id') return true;
    try {
      return argon2.needsRehash(hash, this.#options);
    } catch {
      return true;
    }
  }
}
