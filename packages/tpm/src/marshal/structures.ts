/**
 * The TPM 2.0 structures device trust needs (Part 2 of the Library spec), each as a plain
 * TypeScript value with a `write…(w, v)` / `read…(r)` pair over Writer/Reader, and
 * whole-buffer `encode…`/`decode…` helpers that refuse trailing bytes.
 * Covered: TPMT_PUBLIC (RSA, ECC), TPMS_CREATION_DATA, TPMS_ATTEST (quote, certify, creation;
 * other types kept raw), TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA, ECDAA, SM2, ECSCHNORR, NULL),
 * TPML_PCR_SELECTION, TPML_DIGEST, TPMS_NV_PUBLIC, tickets, TPM2B_ID_OBJECT.
 */
import { TPM_ALG, TPM_ST } from '../constants';
import { TpmError } from '../errors';
import { MAX_DIGEST_SIZE } from '../hash';
import { Reader, Writer } from './buffer';

/** TPM2B_NAME holds a TPMT_HA (2 + 64 bytes) or a 4-byte handle. */
export const MAX_NAME_SIZE = 2 + MAX_DIGEST_SIZE;
/** TPM2B_DATA is sized like a TPMT_HA. */
export const MAX_DATA_SIZE = 2 + MAX_DIGEST_SIZE;
/** TPM2B_PUBLIC_KEY_RSA: up to 4096-bit keys. */
export const MAX_RSA_KEY_BYTES = 512;
/** TPMS_ECC_POINT coordinates: up to P-521 (66 bytes). */
export const MAX_ECC_KEY_BYTES = 66;
/** PCR_SELECT_MAX bytes accepted in a TPMS_PCR_SELECTION (a PC client TPM uses 3). */
export const MAX_PCR_SELECT = 32;
/** HASH_COUNT bound for TPML_PCR_SELECTION. */
export const MAX_PCR_BANKS = 16;
/** TPML_DIGEST holds at most 8 digests. */
export const MAX_DIGESTS = 8;

// ---------------------------------------------------------------------------------------
// Algorithm parameters

/** TPMT_SYM_DEF_OBJECT: `{ algorithm: TPM_ALG.NULL }` or an algorithm with key bits and mode. */
export interface SymDefObject {
  algorithm: number;
  keyBits?: number;
  mode?: number;
}

/**
 * A scheme (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME, TPMT_KDF_SCHEME, TPMT_SIG_SCHEME): NULL and
 * RSAES carry no details, ECDAA a hash and a count, every other scheme a hash.
 */
export interface Scheme {
  scheme: number;
  hashAlg?: number;
  count?: number;
}

export function writeSymDef(w: Writer, s: SymDefObject): void {
  w.u16(s.algorithm);
  if (s.algorithm === TPM_ALG.NULL) return;
  w.u16(s.keyBits ?? 0);
  if (s.algorithm !== TPM_ALG.XOR) w.u16(s.mode ?? TPM_ALG.NULL);
}

export function readSymDef(r: Reader): SymDefObject {
  const algorithm = r.u16();
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  const keyBits = r.u16();
  if (algorithm === TPM_ALG.XOR) return { algorithm, keyBits };
  return { algorithm, keyBits, mode: r.u16() };
}

export function writeScheme(w: Writer, s: Scheme): void {
  w.u16(s.scheme);
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return;
  w.u16(s.hashAlg ?? TPM_ALG.NULL);
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0);
}

export function readScheme(r: Reader): Scheme {
  const scheme = r.u16();
  if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme };
  const hashAlg = r.u16();
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg, count: r.u16() };
  return { scheme, hashAlg };
}

// ---------------------------------------------------------------------------------------
// TPMT_PUBLIC

export interface EccPoint {
  x: Uint8Array;
  y: Uint8Array;
}

export interface RsaParameters {
  symmetric: SymDefObject;
  scheme: Scheme;
  keyBits: number;
  /** 0 means the default exponent 65537. */
  exponent: number;
}

export interface EccParameters {
  symmetric: SymDefObject;
  scheme: Scheme;
  curveId: number;
  kdf: Scheme;
}

interface PublicBase {
  nameAlg: number;
  objectAttributes: number;
  authPolicy: Uint8Array;
}

export interface RsaPublic extends PublicBase {
  type: typeof TPM_ALG.RSA;
  parameters: RsaParameters;
  /** The modulus (TPM2B_PUBLIC_KEY_RSA). */
  unique: Uint8Array;
}

export interface EccPublic extends PublicBase {
  type: typeof TPM_ALG.ECC;
  parameters: EccParameters;
  unique: EccPoint;
}

/** TPMT_PUBLIC for the key types device trust uses. */
export type TpmtPublic = RsaPublic | EccPublic;

export function writeEccPoint(w: Writer, p: EccPoint): void {
  w.tpm2b(p.x, 'ECC x').tpm2b(p.y, 'ECC y');
}

export function readEccPoint(r: Reader): EccPoint {
  return { x: r.tpm2b(MAX_ECC_KEY_BYTES, 'ECC x'), y: r.tpm2b(MAX_ECC_KEY_BYTES, 'ECC y') };
}

export function writePublic(w: Writer, p: TpmtPublic): void {
  w.u16(p.type).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy, 'authPolicy');
  if (p.type === TPM_ALG.RSA) {
    writeSymDef(w, p.parameters.symmetric);
    writeScheme(w, p.parameters.scheme);
    w.u16(p.parameters.keyBits).u32(p.parameters.exponent);
    w.tpm2b(p.unique, 'RSA modulus');
  } else if (p.type === TPM_ALG.ECC) {
    writeSymDef(w, p.parameters.symmetric);
    writeScheme(w, p.parameters.scheme);
    w.u16(p.parameters.curveId);
    writeScheme(w, p.parameters.kdf);
    writeEccPoint(w, p.unique);
  } else {
    throw new TpmError('TPM_ERR_UNSUPPORTED', `public area type ${(p as { type: number }).type}`);
  }
}

export function readPublic(r: Reader): TpmtPublic {
  const type = r.u16();
  const nameAlg = r.u16();
  const objectAttributes = r.u32();
  const authPolicy = r.tpm2b(MAX_DIGEST_SIZE, 'authPolicy');
  if (type === TPM_ALG.RSA) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r);
    const keyBits = r.u16();
    const exponent = r.u32();
    const unique = r.tpm2b(MAX_RSA_KEY_BYTES, 'RSA modulus');
    return {
      type,
      nameAlg,
      objectAttributes,
      authPolicy,
      parameters: { symmetric, scheme, keyBits, exponent },
      unique,
    };
  }
  if (type === TPM_ALG.ECC) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r);
    const curveId = r.u16();
    const kdf = readScheme(r);
    const unique = readEccPoint(r);
    return {
      type,
      nameAlg,
      objectAttributes,
      authPolicy,
      parameters: { symmetric, scheme, curveId, kdf },
      unique,
    };
  }
  throw new TpmError(
    'TPM_ERR_UNSUPPORTED',
    `${r.what}: public area type 0x${type.toString(16)} (only RSA and ECC keys are supported)`,
  );
}

// ---------------------------------------------------------------------------------------
// PCR selections and digests

/** TPMS_PCR_SELECTION: a bank and the PCR indices selected in it (ascending on read). */
export interface PcrSelection {
  hash: number;
  pcrs: number[];
  /** sizeofSelect as read (kept so that re-marshaling gives the same bytes); default ≥ 3. */
  sizeofSelect?: number;
}

export function writePcrSelection(w: Writer, s: PcrSelection): void {
  let size = s.sizeofSelect ?? 3;
  for (const p of s.pcrs) {
    if (!Number.isInteger(p) || p < 0 || p >= MAX_PCR_SELECT * 8) {
      throw new TpmError('TPM_ERR_BAD_ARGUMENT', `PCR index ${p} out of range`);
    }
    size = Math.max(size, (p >> 3) + 1);
  }
  const bits = new Uint8Array(size);
  for (const p of s.pcrs) bits[p >> 3]! |= 1 << (p & 7);
  w.u16(s.hash).u8(size).bytes(bits);
}

export function readPcrSelection(r: Reader): PcrSelection {
  const hash = r.u16();
  const sizeofSelect = r.u8();
  if (sizeofSelect > MAX_PCR_SELECT) r.fail(`sizeofSelect ${sizeofSelect} exceeds ${MAX_PCR_SELECT}`);
  const bits = r.bytes(sizeofSelect);
  const pcrs: number[] = [];
  for (let i = 0; i < sizeofSelect * 8; i++) if (bits[i >> 3]! & (1 << (i & 7))) pcrs.push(i);
  return sizeofSelect === 3 ? { hash, pcrs } : { hash, pcrs, sizeofSelect };
}

/** One PCR value of one bank (what TPM2_PCR_Read returns, what a quote verifier is given). */
export interface PcrValue {
  hash: number;
  pcr: number;
  digest: Uint8Array;
}

/** TPML_PCR_SELECTION */
export function writePcrSelections(w: Writer, list: PcrSelection[]): void {
  if (list.length > MAX_PCR_BANKS) throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'too many PCR banks');
  w.u32(list.length);
  for (const s of list) writePcrSelection(w, s);
}

export function readPcrSelections(r: Reader): PcrSelection[] {
  const n = r.count(MAX_PCR_BANKS, 3, 'TPML_PCR_SELECTION');
  const out: PcrSelection[] = [];
  for (let i = 0; i < n; i++) out.push(readPcrSelection(r));
  return out;
}

/** TPML_DIGEST */
export function writeDigests(w: Writer, list: Uint8Array[]): void {
  if (list.length > MAX_DIGESTS) throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'too many digests');
  w.u32(list.length);
  for (const d of list) w.tpm2b(d, 'TPM2B_DIGEST');
}

export function readDigests(r: Reader): Uint8Array[] {
  const n = r.count(MAX_DIGESTS, 2, 'TPML_DIGEST');
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(r.tpm2b(MAX_DIGEST_SIZE, 'TPM2B_DIGEST'));
  return out;
}

// ---------------------------------------------------------------------------------------
// TPMS_CREATION_DATA

export interface TpmsCreationData {
  pcrSelect: PcrSelection[];
  pcrDigest: Uint8Array;
  locality: number;
  parentNameAlg: number;
  parentName: Uint8Array;
  parentQualifiedName: Uint8Array;
  outsideInfo: Uint8Array;
}

export function writeCreationData(w: Writer, c: TpmsCreationData): void {
  writePcrSelections(w, c.pcrSelect);
  w.tpm2b(c.pcrDigest).u8(c.locality).u16(c.parentNameAlg);
  w.tpm2b(c.parentName).tpm2b(c.parentQualifiedName).tpm2b(c.outsideInfo);
}

export function readCreationData(r: Reader): TpmsCreationData {
  return {
    pcrSelect: readPcrSelections(r),
    pcrDigest: r.tpm2b(MAX_DIGEST_SIZE, 'pcrDigest'),
    locality: r.u8(),
    parentNameAlg: r.u16(),
    parentName: r.tpm2b(MAX_NAME_SIZE, 'parentName'),
    parentQualifiedName: r.tpm2b(MAX_NAME_SIZE, 'parentQualifiedName'),
    outsideInfo: r.tpm2b(MAX_DATA_SIZE, 'outsideInfo'),
  };
}

// ---------------------------------------------------------------------------------------
// TPMS_ATTEST

export interface ClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

export interface QuoteInfo {
  pcrSelect: PcrSelection[];
  pcrDigest: Uint8Array;
}

export interface CertifyInfo {
  name: Uint8Array;
  qualifiedName: Uint8Array;
}

export interface CreationInfo {
  objectName: Uint8Array;
  creationHash: Uint8Array;
}

/**
 * TPMS_ATTEST. Exactly one of `quote`, `certify`, `creation` or `other` (the raw attested
 * bytes of a type this library does not interpret) is set, according to `type`.
 */
export interface TpmsAttest {
  magic: number;
  type: number;
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
  quote?: QuoteInfo;
  certify?: CertifyInfo;
  creation?: CreationInfo;
  other?: Uint8Array;
}

export function writeAttest(w: Writer, a: TpmsAttest): void {
  w.u32(a.magic).u16(a.type).tpm2b(a.qualifiedSigner).tpm2b(a.extraData);
  w.u64(a.clockInfo.clock).u32(a.clockInfo.resetCount).u32(a.clockInfo.restartCount);
  w.u8(a.clockInfo.safe ? 1 : 0).u64(a.firmwareVersion);
  if (a.type === TPM_ST.ATTEST_QUOTE && a.quote) {
    writePcrSelections(w, a.quote.pcrSelect);
    w.tpm2b(a.quote.pcrDigest);
  } else if (a.type === TPM_ST.ATTEST_CERTIFY && a.certify) {
    w.tpm2b(a.certify.name).tpm2b(a.certify.qualifiedName);
  } else if (a.type === TPM_ST.ATTEST_CREATION && a.creation) {
    w.tpm2b(a.creation.objectName).tpm2b(a.creation.creationHash);
  } else if (a.other) {
    w.bytes(a.other);
  } else {
    throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'TPMS_ATTEST without the attested part for its type');
  }
}

export function readAttest(r: Reader): TpmsAttest {
  const magic = r.u32();
  const type = r.u16();
  const qualifiedSigner = r.tpm2b(MAX_NAME_SIZE, 'qualifiedSigner');
  const extraData = r.tpm2b(MAX_DATA_SIZE, 'extraData');
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8();
  if (safe > 1) r.fail(`clockInfo.safe is ${safe}, not a TPMI_YES_NO`);
  const clockInfo = { clock, resetCount, restartCount, safe: safe === 1 };
  const firmwareVersion = r.u64();
  const base = { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion };
  if (type === TPM_ST.ATTEST_QUOTE) {
    return {
      ...base,
      quote: { pcrSelect: readPcrSelections(r), pcrDigest: r.tpm2b(MAX_DIGEST_SIZE, 'pcrDigest') },
    };
  }
  if (type === TPM_ST.ATTEST_CERTIFY) {
    return {
      ...base,
      certify: {
        name: r.tpm2b(MAX_NAME_SIZE, 'name'),
        qualifiedName: r.tpm2b(MAX_NAME_SIZE, 'qualifiedName'),
      },
    };
  }
  if (type === TPM_ST.ATTEST_CREATION) {
    return {
      ...base,
      creation: {
        objectName: r.tpm2b(MAX_NAME_SIZE, 'objectName'),
        creationHash: r.tpm2b(MAX_DIGEST_SIZE, 'creationHash'),
      },
    };
  }
  return { ...base, other: r.rest() };
}

// ---------------------------------------------------------------------------------------
// TPMT_SIGNATURE

export interface RsaSignature {
  sigAlg: typeof TPM_ALG.RSASSA | typeof TPM_ALG.RSAPSS;
  hash: number;
  signature: Uint8Array;
}

export interface EccSignature {
  sigAlg: typeof TPM_ALG.ECDSA | typeof TPM_ALG.ECDAA | typeof TPM_ALG.SM2 | typeof TPM_ALG.ECSCHNORR;
  hash: number;
  r: Uint8Array;
  s: Uint8Array;
}

export interface NullSignature {
  sigAlg: typeof TPM_ALG.NULL;
}

export type TpmtSignature = RsaSignature | EccSignature | NullSignature;

const ECC_SIG_ALGS: number[] = [TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR];

export function writeSignature(w: Writer, s: TpmtSignature): void {
  w.u16(s.sigAlg);
  if (s.sigAlg === TPM_ALG.NULL) return;
  if ('signature' in s) {
    w.u16(s.hash).tpm2b(s.signature);
    return;
  }
  w.u16(s.hash).tpm2b(s.r).tpm2b(s.s);
}

export function readSignature(r: Reader): TpmtSignature {
  const sigAlg = r.u16();
  if (sigAlg === TPM_ALG.NULL) return { sigAlg };
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    return { sigAlg, hash: r.u16(), signature: r.tpm2b(MAX_RSA_KEY_BYTES, 'RSA signature') };
  }
  if (ECC_SIG_ALGS.includes(sigAlg)) {
    return {
      sigAlg: sigAlg as EccSignature['sigAlg'],
      hash: r.u16(),
      r: r.tpm2b(MAX_ECC_KEY_BYTES, 'signatureR'),
      s: r.tpm2b(MAX_ECC_KEY_BYTES, 'signatureS'),
    };
  }
  throw new TpmError('TPM_ERR_UNSUPPORTED', `${r.what}: signature algorithm 0x${sigAlg.toString(16)}`);
}

// ---------------------------------------------------------------------------------------
// NV, tickets, sensitive-create, credential blob

/** TPMS_NV_PUBLIC */
export interface TpmsNvPublic {
  nvIndex: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Uint8Array;
  dataSize: number;
}

export function writeNvPublic(w: Writer, n: TpmsNvPublic): void {
  w.u32(n.nvIndex).u16(n.nameAlg).u32(n.attributes).tpm2b(n.authPolicy).u16(n.dataSize);
}

export function readNvPublic(r: Reader): TpmsNvPublic {
  return {
    nvIndex: r.u32(),
    nameAlg: r.u16(),
    attributes: r.u32(),
    authPolicy: r.tpm2b(MAX_DIGEST_SIZE, 'authPolicy'),
    dataSize: r.u16(),
  };
}

/** TPMT_TK_CREATION / TPMT_TK_HASHCHECK / TPMT_TK_VERIFIED */
export interface Ticket {
  tag: number;
  hierarchy: number;
  digest: Uint8Array;
}

export function writeTicket(w: Writer, t: Ticket): void {
  w.u16(t.tag).u32(t.hierarchy).tpm2b(t.digest);
}

export function readTicket(r: Reader): Ticket {
  return { tag: r.u16(), hierarchy: r.u32(), digest: r.tpm2b(MAX_DIGEST_SIZE, 'ticket digest') };
}

/** TPMS_SENSITIVE_CREATE */
export interface SensitiveCreate {
  userAuth: Uint8Array;
  data: Uint8Array;
}

export function writeSensitiveCreate(w: Writer, s: SensitiveCreate): void {
  w.tpm2b(s.userAuth).tpm2b(s.data);
}

/** The inside of a TPM2B_ID_OBJECT: the outer HMAC and the encrypted credential. */
export interface IdObject {
  integrityHmac: Uint8Array;
  encIdentity: Uint8Array;
}

/** TPM2B_ID_OBJECT (with its size). */
export function writeIdObject(w: Writer, o: IdObject): void {
  w.sized((i) => i.tpm2b(o.integrityHmac).bytes(o.encIdentity), 'TPM2B_ID_OBJECT');
}

export function readIdObject(r: Reader): IdObject {
  return r.sized(
    (i) => ({ integrityHmac: i.tpm2b(MAX_DIGEST_SIZE, 'integrityHMAC'), encIdentity: i.rest() }),
    'TPM2B_ID_OBJECT',
  );
}

// ---------------------------------------------------------------------------------------
// Whole-buffer helpers

/** Reads one structure that must fill `bytes` exactly. */
export function decode<T>(bytes: Uint8Array, read: (r: Reader) => T, what: string): T {
  if (!(bytes instanceof Uint8Array)) throw new TpmError('TPM_ERR_MARSHAL', `${what}: not bytes`);
  const r = new Reader(bytes, what);
  const v = read(r);
  r.end();
  return v;
}

export function encode<T>(write: (w: Writer, v: T) => void, v: T): Uint8Array {
  const w = new Writer();
  write(w, v);
  return w.finish();
}

/** TPMT_PUBLIC bytes (as hashed into the Name). */
export const encodePublic = (p: TpmtPublic): Uint8Array => encode(writePublic, p);
export const decodePublic = (b: Uint8Array): TpmtPublic => decode(b, readPublic, 'TPMT_PUBLIC');
/** TPM2B_PUBLIC bytes (what `tpm2_readpublic -o` / `tpm2_createek -u` write). */
export const encodePublic2b = (p: TpmtPublic): Uint8Array =>
  encode((w, v: TpmtPublic) => w.sized((i) => writePublic(i, v), 'TPM2B_PUBLIC'), p);
export const decodePublic2b = (b: Uint8Array): TpmtPublic =>
  decode(b, (r) => r.sized(readPublic, 'TPM2B_PUBLIC'), 'TPM2B_PUBLIC');
export const encodeAttest = (a: TpmsAttest): Uint8Array => encode(writeAttest, a);
export const decodeAttest = (b: Uint8Array): TpmsAttest => decode(b, readAttest, 'TPMS_ATTEST');
export const encodeSignature = (s: TpmtSignature): Uint8Array => encode(writeSignature, s);
export const decodeSignature = (b: Uint8Array): TpmtSignature => decode(b, readSignature, 'TPMT_SIGNATURE');
export const encodeCreationData = (c: TpmsCreationData): Uint8Array => encode(writeCreationData, c);
export const decodeCreationData = (b: Uint8Array): TpmsCreationData =>
  decode(b, readCreationData, 'TPMS_CREATION_DATA');
export const encodeNvPublic = (n: TpmsNvPublic): Uint8Array => encode(writeNvPublic, n);
export const decodeNvPublic = (b: Uint8Array): TpmsNvPublic => decode(b, readNvPublic, 'TPMS_NV_PUBLIC');
export const encodePcrSelections = (l: PcrSelection[]): Uint8Array => encode(writePcrSelections, l);
export const decodePcrSelections = (b: Uint8Array): PcrSelection[] =>
  decode(b, readPcrSelections, 'TPML_PCR_SELECTION');
export const encodeDigests = (l: Uint8Array[]): Uint8Array => encode(writeDigests, l);
export const decodeDigests = (b: Uint8Array): Uint8Array[] => decode(b, readDigests, 'TPML_DIGEST');
export const encodeIdObject = (o: IdObject): Uint8Array => encode(writeIdObject, o);
export const decodeIdObject = (b: Uint8Array): IdObject => decode(b, readIdObject, 'TPM2B_ID_OBJECT');
