/**
 * SubjectPublicKeyInfo (SPKI DER) of the two key types Warden certifies (and, one way, of RSA
 * keys: a TPM's EK), to and from node
 * KeyObjects, by way of JWK. Why: under OpenSSL 3, node's DER key import and export go through
 * the generic decoder/encoder framework and cost ten to thirty times what the JWK path does
 * (hundreds of µs per key), and every login, device authentication and certificate issuance
 * handles a key or two. Other key types fall back to node's DER path.
 * Who may import: anyone (re-exported from `@warden/api`). Tested by `spki.test.ts`.
 *
 * @example
 *   const der = spkiFromKey(publicKey);           // same bytes as key.export({ type: 'spki', format: 'der' })
 *   const key = keyFromSpki(der);                 // same key as createPublicKey({ key: der, format: 'der', type: 'spki' })
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/** SPKI of a P-256 key, up to the 65-byte uncompressed point. */
const P256_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
/** SPKI of an Ed25519 key, up to the 32-byte key. */
const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** AlgorithmIdentifier of an RSA key: rsaEncryption, NULL parameters. */
const RSA_ALGORITHM = Buffer.from('300d06092a864886f70d0101010500', 'hex');

/** A DER length field. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/**
 * The SPKI DER of an RSA key from its PKCS#1 RSAPublicKey (node exports PKCS#1 ~20× faster
 * than SPKI: 7 against 140 µs for a 2,048-bit key, the EK of an enrollment).
 */
function rsaSpki(pkcs1: Buffer): Buffer {
  const bits = Buffer.concat([Buffer.from([0x03]), derLength(pkcs1.length + 1), Buffer.from([0]), pkcs1]);
  const body = RSA_ALGORITHM.length + bits.length;
  return Buffer.concat([Buffer.from([0x30]), derLength(body), RSA_ALGORITHM, bits]);
}

/** Public JWKs already exported, by key object (KeyObjects never change). */
const publicJwks = new WeakMap<KeyObject, Readonly<JsonWebKey>>();

/**
 * The JWK of a key's public half (a private key's public half is derived), exported once per
 * key object: a key that is certified again (the user's key at device authentication goes
 * into an SSH and an X.509 certificate) is not exported again. Never holds private fields.
 */
export function publicJwk(key: KeyObject): Readonly<JsonWebKey> {
  let jwk = publicJwks.get(key);
  if (!jwk) {
    jwk = Object.freeze((key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' }));
    publicJwks.set(key, jwk);
  }
  return jwk;
}

/** The SPKI DER of a public (or private: its public half) key. */
export function spkiFromKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ed25519') {
    const jwk = publicJwk(key);
    return Buffer.concat([ED25519_PREFIX, Buffer.from(jwk.x!, 'base64url')]);
  }
  if (key.asymmetricKeyType === 'ec') {
    const jwk = publicJwk(key);
    if (jwk.crv === 'P-256') {
      return Buffer.concat([
        P256_PREFIX,
        Buffer.from([4]),
        Buffer.from(jwk.x!, 'base64url'),
        Buffer.from(jwk.y!, 'base64url'),
      ]);
    }
  }
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (key.asymmetricKeyType === 'rsa') return rsaSpki(pub.export({ type: 'pkcs1', format: 'der' }));
  return pub.export({ type: 'spki', format: 'der' });
}

/** The public key in an SPKI DER; throws as `createPublicKey` does when it is not one. */
export function keyFromSpki(der: Uint8Array): KeyObject {
  const b = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  if (
    b.length === P256_PREFIX.length + 65 &&
    b.subarray(0, P256_PREFIX.length).equals(P256_PREFIX) &&
    b[P256_PREFIX.length] === 4
  ) {
    const at = P256_PREFIX.length + 1;
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: b.subarray(at, at + 32).toString('base64url'),
        y: b.subarray(at + 32).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  if (
    b.length === ED25519_PREFIX.length + 32 &&
    b.subarray(0, ED25519_PREFIX.length).equals(ED25519_PREFIX)
  ) {
    return createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: b.subarray(ED25519_PREFIX.length).toString('base64url') },
      format: 'jwk',
    });
  }
  return createPublicKey({ key: b, format: 'der', type: 'spki' });
}
