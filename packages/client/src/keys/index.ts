/**
 * The user's key pair: one ECDSA P-256 key serves both certificates (SSH and X.509), so
 * OpenSSH, TLS clients, psql and mysql can all use it. Private keys are PKCS#8 PEM, file
 * mode 0600 (see the profile store), never logged.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { formatAuthorizedKey } from '@warden/api';

export class UserKey {
  readonly #privateKey: KeyObject;
  readonly publicKey: KeyObject;

  constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
  }

  static generate(): UserKey {
    return new UserKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
  }

  static fromPem(pem: string): UserKey {
    return new UserKey(createPrivateKey(pem));
  }

  get privateKey(): KeyObject {
    return this.#privateKey;
  }

  /** PKCS#8 PEM of the private key. */
  privatePem(): string {
    return this.#privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  /** SPKI PEM of the public key. */
  spkiPem(): string {
    return this.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  /** OpenSSH authorized_keys line of the public key. */
  sshPublicKey(): string {
    return formatAuthorizedKey(this.publicKey);
  }

  toJSON(): string {
    return '[UserKey redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[UserKey redacted]';
  }
}
