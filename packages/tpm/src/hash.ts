/**
 * TPM hash algorithms ↔ node:crypto names and digest sizes.
 * Who may import: every module of this package.
 */
import { createHash, createHmac } from 'node:crypto';
import { TPM_ALG } from './constants';
import { TpmError } from './errors';

const HASHES: Record<number, { name: string; size: number }> = {
  [TPM_ALG.SHA1]: { name: 'sha1', size: 20 },
  [TPM_ALG.SHA256]: { name: 'sha256', size: 32 },
  [TPM_ALG.SHA384]: { name: 'sha384', size: 48 },
  [TPM_ALG.SHA512]: { name: 'sha512', size: 64 },
};

/** The largest digest any supported hash produces (bounds TPM2B_DIGEST reads). */
export const MAX_DIGEST_SIZE = 64;

export function isHashAlg(alg: number): boolean {
  return HASHES[alg] !== undefined;
}

function lookup(alg: number): { name: string; size: number } {
  const h = HASHES[alg];
  if (!h) {
    throw new TpmError('TPM_ERR_UNSUPPORTED', `hash algorithm 0x${alg.toString(16).padStart(4, '0')}`);
  }
  return h;
}

/** node:crypto name of a TPM hash algorithm (`sha256`). */
export function hashName(alg: number): string {
  return lookup(alg).name;
}

export function digestSize(alg: number): number {
  return lookup(alg).size;
}

export function hash(alg: number, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(lookup(alg).name);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hmac(alg: number, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac(lookup(alg).name, key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
