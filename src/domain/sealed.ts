/**
 * Encryption at rest for secrets Tessera must read back (private keys, TOTP secrets): AES-256-GCM
 * under a key derived from the master secret, one derived key per purpose, with the record's id
 * bound as additional data so a sealed value cannot be moved to another record.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

import { AppError } from '../errors.ts';

export class Sealer {
  readonly #key: Buffer;

  /** `purpose` separates key domains: a value sealed for one purpose never opens under another. */
  constructor(masterSecret: string, purpose: string) {
    this.#key = Buffer.from(hkdfSync('sha256', masterSecret, 'tessera', `tessera ${purpose} v1`, 32));
  }

  /** `v1.<iv>.<ciphertext+tag>`, all base64url. */
  seal(plaintext: string, boundTo: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(boundTo));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  open(sealed: string, boundTo: string): string {
    const [version, iv, body] = sealed.split('.');
    if (version !== 'v1' || !iv || !body) {
      throw new AppError('ERR_SECRET', 'A sealed value is stored in an unknown format');
    }
    try {
      const data = Buffer.from(body, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(boundTo));
      decipher.setAuthTag(data.subarray(data.length - 16));
      return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
    } catch (error) {
      throw new AppError('ERR_SECRET', 'A sealed value cannot be opened: TESSERA_SECRET differs from the one that sealed it', { cause: error });
    }
  }
}
