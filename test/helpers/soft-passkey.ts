/**
 * A passkey in software: a P-256 key pair and the WebAuthn assertion a platform authenticator would
 * send (user present and verified, one device), so flows through the passwordless passkey route run
 * over plain HTTP without a browser. Verification is @simplewebauthn/server's, as for real browsers.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

import type { Passkey } from '../../src/store/port.ts';

const USER_PRESENT_AND_VERIFIED = 0x01 | 0x04;

export interface SoftPasskey {
  /** What the store keeps for this credential (publicKey as a COSE key, base64url). */
  readonly passkey: Passkey;
  /** The browser's PublicKeyCredential JSON answering `options` from `origin`, for the account `sub`. */
  assert(options: { challenge: string; rpId?: string }, origin: string, sub: string): string;
}

export function softPasskey(name = 'Software key'): SoftPasskey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const credentialId = randomBytes(16).toString('base64url');
  let counter = 0;
  return {
    passkey: { credentialId, publicKey: coseKey(publicKey).toString('base64url'), counter: 0, name, createdAt: new Date() },
    assert(options, origin, sub) {
      counter += 1;
      const rpId = options.rpId ?? new URL(origin).hostname;
      const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin, crossOrigin: false }));
      const count = Buffer.alloc(4);
      count.writeUInt32BE(counter);
      const authenticatorData = Buffer.concat([sha256(Buffer.from(rpId)), Buffer.from([USER_PRESENT_AND_VERIFIED]), count]);
      const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), privateKey as KeyObject);
      return JSON.stringify({
        id: credentialId,
        rawId: credentialId,
        type: 'public-key',
        response: {
          clientDataJSON: clientDataJSON.toString('base64url'),
          authenticatorData: authenticatorData.toString('base64url'),
          signature: signature.toString('base64url'),
          userHandle: Buffer.from(sub).toString('base64url'),
        },
        clientExtensionResults: {},
        authenticatorAttachment: 'platform',
      });
    },
  };
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The COSE_Key (RFC 9053) of an EC2 P-256 ES256 public key, CBOR-encoded by hand: a fixed five-entry map. */
function coseKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  return Buffer.concat([
    Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]), x,
    Buffer.from([0x22, 0x58, 0x20]), y,
  ]);
}
