/**
 * Test-only: a fresh P-256 key pair in both forms a certificate test needs: node KeyObjects
 * (PEM export, node's sign) and WebCrypto keys (what @peculiar/x509 signs certificates with);
 * and a P-256 public key as a TPM's public area holds it (`tpmEccPoint`).
 * Who may import: `*.test.ts` files.
 */
import { generateKeyPairSync, type KeyObject, webcrypto } from 'node:crypto';

/** ECDSA P-256 with SHA-256, as @peculiar/x509 and WebCrypto name it. */
export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function p256KeyPair(): Promise<{
  pair: { privateKey: KeyObject; publicKey: KeyObject };
  keys: { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
}> {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys = {
    privateKey: await webcrypto.subtle.importKey(
      'pkcs8',
      pair.privateKey.export({ type: 'pkcs8', format: 'der' }),
      ECDSA_P256,
      false,
      ['sign'],
    ),
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      pair.publicKey.export({ type: 'spki', format: 'der' }),
      ECDSA_P256,
      true,
      ['verify'],
    ),
  };
  return { pair, keys };
}

/** The point of a P-256 public key as a TPM public area's `unique` field holds it (x and y, 32 bytes each). */
export function tpmEccPoint(publicKey: KeyObject): { x: Uint8Array; y: Uint8Array } {
  const jwk = publicKey.export({ format: 'jwk' });
  return {
    x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
    y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
  };
}
