/**
 * `PrivateKey`: a private key that can sign but never shows itself. `toJSON`, `toString` and
 * `util.inspect` print `[PrivateKey <type> redacted]`, so a CA or an issued host key that ends
 * up in a log line, an error or a JSON response leaks nothing. The PKCS#8 PEM comes out only
 * through `toPkcs8Pem()`, called where the key is stored or handed to `tls.createServer`.
 * Internal to `ca/`; exported from `ca/index.ts`.
 */

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  webcrypto,
} from 'node:crypto';
import { WardenError } from '@warden/api';

export type PrivateKeyAlgorithm = 'ed25519' | 'ecdsa-p256';

const inspectSymbol = Symbol.for('nodejs.util.inspect.custom');

export class PrivateKey {
  readonly #key: KeyObject;
  readonly algorithm: PrivateKeyAlgorithm;
  readonly publicKey: KeyObject;

  constructor(key: KeyObject) {
    if (key.type !== 'private') throw new TypeError('PrivateKey needs a private KeyObject');
    if (key.asymmetricKeyType === 'ed25519') this.algorithm = 'ed25519';
    else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
      this.algorithm = 'ecdsa-p256';
    } else
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'only Ed25519 and ECDSA P-256 keys are supported');
    this.#key = key;
    this.publicKey = createPublicKey(key);
  }

  static generate(algorithm: PrivateKeyAlgorithm): PrivateKey {
    const { privateKey } =
      algorithm === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new PrivateKey(privateKey);
  }

  /** Reads a PKCS#8 PEM; a bad PEM is WARDEN_ERR_BAD_CONFIG (the error never quotes the PEM). */
  static fromPkcs8Pem(pem: string): PrivateKey {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      throw new WardenError('WARDEN_ERR_BAD_CONFIG', 'a stored private key is not a valid PKCS#8 PEM');
    }
    return new PrivateKey(key);
  }

  /** The node key, for `crypto.sign` and friends. Don't store or log it. */
  get keyObject(): KeyObject {
    return this.#key;
  }

  toPkcs8Pem(): string {
    return this.#key.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  /** The key as a non-extractable WebCrypto signing key (for @peculiar/x509; ECDSA P-256 only). */
  async toWebCryptoSigningKey(): Promise<webcrypto.CryptoKey> {
    if (this.algorithm !== 'ecdsa-p256') throw new TypeError('only ECDSA P-256 keys sign X.509 certificates');
    return webcrypto.subtle.importKey(
      'pkcs8',
      this.#key.export({ type: 'pkcs8', format: 'der' }),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
  }

  toJSON(): string {
    return this.toString();
  }

  toString(): string {
    return `[PrivateKey ${this.algorithm} redacted]`;
  }

  [inspectSymbol](): string {
    return this.toString();
  }
}
