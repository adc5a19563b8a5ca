/**
 * The TPM's key derivation functions (Library Part 1, §11.4.10): KDFa (SP 800-108 counter
 * mode with HMAC) and KDFe (SP 800-56A concatenation KDF). Labels are used with their
 * terminating zero byte, as the TPM does.
 */

import { hash, hmac } from '../hash';
import { Writer } from '../marshal';

function labelBytes(label: string | Uint8Array): Uint8Array {
  const b = typeof label === 'string' ? new TextEncoder().encode(label) : label;
  if (b.length > 0 && b[b.length - 1] === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/**
 * `bits` of key from blocks 1, 2, … (`block` gets the counter as a 32-bit big-endian field),
 * concatenated and cut to length; when `bits` is not a whole number of bytes, the unused high
 * bits of the first byte are cleared (both KDFs do so).
 */
function counterMode(bits: number, block: (counter: Uint8Array) => Uint8Array): Uint8Array {
  const bytes = Math.ceil(bits / 8);
  const out = new Uint8Array(bytes);
  for (let i = 1, off = 0; off < bytes; i++) {
    const b = block(new Writer().u32(i).finish());
    out.set(b.subarray(0, Math.min(b.length, bytes - off)), off);
    off += b.length;
  }
  if (bits % 8 !== 0) out[0]! &= (1 << (bits % 8)) - 1;
  return out;
}

/**
 * KDFa(hashAlg, key, label, contextU, contextV, bits).
 *
 * @example
 *   const symKey = kdfa(TPM_ALG.SHA256, seed, 'STORAGE', akName, new Uint8Array(0), 128);
 */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string | Uint8Array,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const l = labelBytes(label);
  const bitsField = new Writer().u32(bits).finish();
  return counterMode(bits, (i) => hmac(hashAlg, key, i, l, contextU, contextV, bitsField));
}

/** KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits). */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string | Uint8Array,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  const l = labelBytes(label);
  return counterMode(bits, (i) => hash(hashAlg, i, z, l, partyU, partyV));
}
