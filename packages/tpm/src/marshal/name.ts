/**
 * TPM Names: how the TPM identifies an entity in policies, credentials and attestations.
 * An object's or NV index's Name is nameAlg (2 bytes) ‖ H_nameAlg(its marshaled public area);
 * a permanent handle's or session's Name is the handle itself (4 bytes).
 */
import { hash } from '../hash';
import { concatBytes, Writer } from './buffer';
import { encodeNvPublic, encodePublic, type TpmsNvPublic, type TpmtPublic } from './structures';

function algPrefix(alg: number): Uint8Array {
  return new Writer().u16(alg).finish();
}

/**
 * The Name of an object (key) from its public area.
 *
 * @example
 *   const akName = objectName(akPublic); // 0x000b ‖ SHA-256(TPMT_PUBLIC)
 */
export function objectName(pub: TpmtPublic): Uint8Array {
  return concatBytes(algPrefix(pub.nameAlg), hash(pub.nameAlg, encodePublic(pub)));
}

/** The Name of an NV index from its public area. */
export function nvName(pub: TpmsNvPublic): Uint8Array {
  return concatBytes(algPrefix(pub.nameAlg), hash(pub.nameAlg, encodeNvPublic(pub)));
}

/** The Name of a permanent entity (hierarchy, TPM_RH_…) or session: its handle. */
export function handleName(handle: number): Uint8Array {
  return new Writer().u32(handle).finish();
}
