/**
 * Verification of TPM attestations: quotes (PCR digest and nonce signed by an AK) and
 * certify-creation (the AK was created inside this TPM with these creation data), plus
 * the AK attribute check. Checks run in a fixed order and each failure has its own code:
 * magic → type → signature → nonce → PCR selection → PCR digest.
 *
 * Authentication, server side:
 *   1. nonce = randomBytes(32) → client
 *   2. client: tpm.quote({ signHandle: ak, qualifyingData: nonce, pcrs }) + pcrRead(pcrs)
 *   3. verifyQuote({ akPublic: stored AK, attest, signature, nonce, pcrs }) → accepted PCRs
 */
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST, TPMA_OBJECT } from '../constants';
import { TpmError } from '../errors';
import { digestSize, hash } from '../hash';
import {
  bytesEqual,
  decodeAttest,
  decodeCreationData,
  decodeSignature,
  objectName,
  type PcrSelection,
  type PcrValue,
  type TpmsAttest,
  type TpmsCreationData,
  type TpmtPublic,
  type TpmtSignature,
  toHex,
} from '../marshal';
import { CURVES, verifyTpmSignature } from './keys';

const ATTEST_TYPE_NAMES: Record<number, string> = {
  [TPM_ST.ATTEST_QUOTE]: 'quote',
  [TPM_ST.ATTEST_CERTIFY]: 'certify',
  [TPM_ST.ATTEST_CREATION]: 'creation',
};

function typeName(t: number): string {
  return ATTEST_TYPE_NAMES[t] ?? `0x${t.toString(16)}`;
}

function asSignature(s: Uint8Array | TpmtSignature): TpmtSignature {
  return s instanceof Uint8Array ? decodeSignature(s) : s;
}

/**
 * Parses `attest`, checks its magic and type and that `signer` signed it. Returns the
 * parsed attestation and the signature (whose hash the quote's PCR digest uses).
 */
export function verifyAttestation(opts: {
  signer: TpmtPublic;
  attest: Uint8Array;
  signature: Uint8Array | TpmtSignature;
  type: number;
}): { attest: TpmsAttest; signature: TpmtSignature } {
  const attest = decodeAttest(opts.attest);
  if (attest.magic !== TPM_GENERATED_VALUE) {
    throw new TpmError(
      'TPM_ERR_ATTEST_MAGIC',
      `the attestation's magic is 0x${attest.magic.toString(16)}, not TPM_GENERATED_VALUE: it was not made by a TPM`,
    );
  }
  if (attest.type !== opts.type) {
    throw new TpmError(
      'TPM_ERR_ATTEST_TYPE',
      `expected a ${typeName(opts.type)} attestation, got a ${typeName(attest.type)} attestation`,
    );
  }
  const signature = asSignature(opts.signature);
  if (!verifyTpmSignature(opts.signer, opts.attest, signature)) {
    throw new TpmError(
      'TPM_ERR_BAD_SIGNATURE',
      `the ${typeName(opts.type)} is not signed by the expected key`,
    );
  }
  return { attest, signature };
}

/**
 * The digest a quote carries for these PCR values: H(values in selection order), with the
 * hash of the quote's signature.
 */
export function pcrDigest(hashAlg: number, selection: PcrSelection[], values: PcrValue[]): Uint8Array {
  const byKey = new Map<number, Uint8Array>();
  for (const v of values) {
    const k = pcrKey(v.hash, v.pcr);
    if (k !== undefined) byKey.set(k, v.digest);
  }
  const parts: Uint8Array[] = [];
  for (const s of selection) {
    for (const p of s.pcrs) {
      const k = pcrKey(s.hash, p);
      const v = k === undefined ? undefined : byKey.get(k);
      if (!v) {
        throw new TpmError(
          'TPM_ERR_PCR_SELECTION',
          `the quote covers PCR ${p} of bank 0x${s.hash.toString(16)}, which was not supplied`,
        );
      }
      parts.push(v);
    }
  }
  return hash(hashAlg, ...parts);
}

/**
 * A PCR as one number (bank, then index): cheaper set and map keys than strings, for the
 * checks every quote goes through. Undefined for what no selection can hold (a selection
 * bitmap has at most 255 bytes; banks are 16-bit algorithm IDs).
 */
function pcrKey(bank: number, pcr: number): number | undefined {
  if (!Number.isInteger(bank) || bank < 0 || bank > 0xffff) return undefined;
  if (!Number.isInteger(pcr) || pcr < 0 || pcr >= 2048) return undefined;
  return bank * 2048 + pcr;
}

export interface VerifiedQuote {
  attest: TpmsAttest;
  /** The quoted PCR values, in the quote's selection order. */
  pcrs: PcrValue[];
}

/**
 * Verifies a quote: made by a TPM, signed by `akPublic`, over `nonce`, and its PCR digest
 * is the digest of exactly the supplied `pcrs` values.
 *
 * @example
 *   const { pcrs } = verifyQuote({ akPublic, attest: q.attest, signature: q.signatureBytes, nonce, pcrs: values });
 */
export function verifyQuote(opts: {
  akPublic: TpmtPublic;
  attest: Uint8Array;
  signature: Uint8Array | TpmtSignature;
  nonce: Uint8Array;
  pcrs: PcrValue[];
  /** When given, the quote must cover exactly these PCRs. */
  expectedSelection?: PcrSelection[];
}): VerifiedQuote {
  const { attest, signature } = verifyAttestation({
    signer: opts.akPublic,
    attest: opts.attest,
    signature: opts.signature,
    type: TPM_ST.ATTEST_QUOTE,
  });
  if (!bytesEqual(attest.extraData, opts.nonce)) {
    throw new TpmError(
      'TPM_ERR_NONCE_MISMATCH',
      'the quote does not carry the challenge nonce (replayed or stale)',
    );
  }
  const quote = attest.quote!;
  const quoted = new Set<number>();
  for (const s of quote.pcrSelect) for (const p of s.pcrs) quoted.add(pcrKey(s.hash, p)!);
  for (const v of opts.pcrs) {
    const k = pcrKey(v.hash, v.pcr);
    if (k === undefined || !quoted.has(k)) {
      throw new TpmError(
        'TPM_ERR_PCR_SELECTION',
        `PCR ${v.pcr} of bank 0x${v.hash.toString(16)} was supplied but not quoted`,
      );
    }
    if (v.digest.length !== digestSize(v.hash)) {
      throw new TpmError(
        'TPM_ERR_PCR_MISMATCH',
        `PCR ${v.pcr} has ${v.digest.length} bytes, not a digest of its bank`,
      );
    }
  }
  if (opts.expectedSelection) {
    const want = new Set<number | undefined>();
    for (const s of opts.expectedSelection) for (const p of s.pcrs) want.add(pcrKey(s.hash, p));
    if (want.size !== quoted.size || [...want].some((k) => k === undefined || !quoted.has(k))) {
      throw new TpmError('TPM_ERR_PCR_SELECTION', 'the quote covers other PCRs than requested');
    }
  }
  if (signature.sigAlg === TPM_ALG.NULL) throw new TpmError('TPM_ERR_BAD_SIGNATURE', 'unsigned quote');
  const digest = pcrDigest(signature.hash, quote.pcrSelect, opts.pcrs);
  if (!bytesEqual(digest, quote.pcrDigest)) {
    throw new TpmError('TPM_ERR_PCR_MISMATCH', 'the supplied PCR values do not match the quoted PCR digest', {
      details: { quoted: toHex(quote.pcrDigest), computed: toHex(digest) },
    });
  }
  const byKey = new Map<number, PcrValue>();
  for (const v of opts.pcrs) byKey.set(pcrKey(v.hash, v.pcr)!, v);
  const pcrs: PcrValue[] = [];
  for (const s of quote.pcrSelect) for (const p of s.pcrs) pcrs.push(byKey.get(pcrKey(s.hash, p)!)!);
  return { attest, pcrs };
}

const AK_REQUIRED: [keyof typeof TPMA_OBJECT, string][] = [
  ['fixedTPM', 'it could leave the TPM'],
  ['fixedParent', 'it could be duplicated to another parent'],
  ['sensitiveDataOrigin', 'its private key was not generated inside the TPM'],
  ['restricted', 'it could sign data that imitates TPM attestations'],
  ['sign', 'it cannot sign'],
];

/**
 * Checks that a public area is an attestation key: restricted signing, fixedTPM,
 * fixedParent, sensitiveDataOrigin, not a decryption key, with a fixed signing scheme of a
 * supported size (RSA ≥ 2048 bits or ECC P-256/384/521).
 */
export function checkAkAttributes(pub: TpmtPublic): void {
  const attrs = pub.objectAttributes;
  for (const [bit, why] of AK_REQUIRED) {
    if (!(attrs & TPMA_OBJECT[bit])) {
      throw new TpmError('TPM_ERR_AK_ATTRIBUTES', `the AK lacks ${bit}: ${why}`, {
        details: { attribute: bit },
      });
    }
  }
  if (attrs & TPMA_OBJECT.decrypt) {
    throw new TpmError('TPM_ERR_AK_ATTRIBUTES', 'the AK is also a decryption key', {
      details: { attribute: 'decrypt' },
    });
  }
  const scheme = pub.parameters.scheme;
  const schemeOk =
    pub.type === TPM_ALG.RSA
      ? scheme.scheme === TPM_ALG.RSASSA || scheme.scheme === TPM_ALG.RSAPSS
      : scheme.scheme === TPM_ALG.ECDSA;
  if (!schemeOk || scheme.hashAlg === undefined || scheme.hashAlg === TPM_ALG.SHA1) {
    throw new TpmError(
      'TPM_ERR_AK_ATTRIBUTES',
      'the AK has no fixed RSASSA/RSAPSS/ECDSA scheme with SHA-256 or better',
      {
        details: { attribute: 'scheme' },
      },
    );
  }
  digestSize(scheme.hashAlg);
  digestSize(pub.nameAlg);
  if (pub.type === TPM_ALG.RSA ? pub.parameters.keyBits < 2048 : !CURVES[pub.parameters.curveId]) {
    throw new TpmError('TPM_ERR_AK_ATTRIBUTES', 'the AK key is too small or of an unsupported curve', {
      details: { attribute: 'keySize' },
    });
  }
}

/**
 * Verifies a certify-creation attestation: `signer` (by default the AK itself) signed that
 * the object with public area `akPublic` was created with `creationData`.
 * Returns the parsed creation data.
 */
export function verifyCertifyCreation(opts: {
  akPublic: TpmtPublic;
  /** TPMS_CREATION_DATA bytes as TPM2_Create returned them. */
  creationData: Uint8Array;
  attest: Uint8Array;
  signature: Uint8Array | TpmtSignature;
  signer?: TpmtPublic;
  /** When given, the attestation's extraData must equal it. */
  qualifyingData?: Uint8Array;
}): { attest: TpmsAttest; creationData: TpmsCreationData } {
  const { attest } = verifyAttestation({
    signer: opts.signer ?? opts.akPublic,
    attest: opts.attest,
    signature: opts.signature,
    type: TPM_ST.ATTEST_CREATION,
  });
  if (opts.qualifyingData && !bytesEqual(attest.extraData, opts.qualifyingData)) {
    throw new TpmError(
      'TPM_ERR_NONCE_MISMATCH',
      'the creation attestation does not carry the expected qualifying data',
    );
  }
  const creation = attest.creation!;
  if (!bytesEqual(creation.objectName, objectName(opts.akPublic))) {
    throw new TpmError('TPM_ERR_CREATION_MISMATCH', 'the creation attestation is about another key');
  }
  if (!bytesEqual(creation.creationHash, hash(opts.akPublic.nameAlg, opts.creationData))) {
    throw new TpmError(
      'TPM_ERR_CREATION_MISMATCH',
      'the creation data do not match the attested creation hash',
    );
  }
  return { attest, creationData: decodeCreationData(opts.creationData) };
}
