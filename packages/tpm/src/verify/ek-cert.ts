/**
 * EK certificates (TCG EK Credential Profile): parsing with the TCG quirks that general X.509
 * libraries trip over — an empty or placeholder subject with a *critical* subjectAltName
 * holding the TPM manufacturer, model and version as directory attributes; the EK
 * certificate EKU `2.23.133.8.1`; RSA keys labelled `id-RSAES-OAEP` instead of
 * `rsaEncryption`; subjectDirectoryAttributes with the TPM spec — and chain verification
 * against an explicit set of allowed CAs (no system trust store).
 */
import { constants, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { TpmError } from '../errors';
import { bytesEqual, type TpmtPublic, toHex } from '../marshal';
import {
  children,
  decodeOid,
  decodeString,
  decodeTime,
  derOid,
  derSeq,
  derTlv,
  malformed,
  readOne,
  TAG,
  type Tlv,
} from './der';
import { publicKeyFromTpmt } from './keys';

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsaesOaep: '1.2.840.113549.1.1.7',
  ecPublicKey: '1.2.840.10045.2.1',
  subjectDirectoryAttributes: '2.5.29.9',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  extKeyUsage: '2.5.29.37',
  authorityKeyIdentifier: '2.5.29.35',
  subjectKeyIdentifier: '2.5.29.14',
  tpmManufacturer: '2.23.133.2.1',
  tpmModel: '2.23.133.2.2',
  tpmVersion: '2.23.133.2.3',
  ekCertificateEku: '2.23.133.8.1',
} as const;

/** Extensions whose meaning this verifier applies, so they may be critical. */
const UNDERSTOOD = new Set<string>([
  OID.subjectDirectoryAttributes,
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  OID.certificatePolicies,
  OID.extKeyUsage,
  OID.authorityKeyIdentifier,
  OID.subjectKeyIdentifier,
]);

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  [OID.tpmManufacturer]: 'TPMManufacturer',
  [OID.tpmModel]: 'TPMModel',
  [OID.tpmVersion]: 'TPMVersion',
};

export interface Extension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

/** An X.509 certificate as far as EK verification needs it. */
export interface Certificate {
  der: Uint8Array;
  /** The signed part. */
  tbs: Uint8Array;
  version: number;
  /** Hex of the serial number's two's-complement bytes. */
  serialNumber: string;
  /** DER of the issuer and subject Names (compared byte for byte when chaining). */
  issuer: Uint8Array;
  subject: Uint8Array;
  issuerText: string;
  subjectText: string;
  notBefore: Date;
  notAfter: Date;
  /** The SubjectPublicKeyInfo as written in the certificate. */
  spki: Uint8Array;
  /** The key algorithm OID as written (id-RSAES-OAEP for some EK certificates). */
  keyAlgorithm: string;
  publicKey: KeyObject;
  signatureAlgorithm: string;
  signatureParams: Uint8Array | undefined;
  signature: Uint8Array;
  extensions: Extension[];
  isCa: boolean;
  /** Key usage bits (bit 0 = digitalSignature, … bit 5 = keyCertSign), if present. */
  keyUsage: number | undefined;
  extKeyUsage: string[] | undefined;
}

export interface EkCertificate extends Certificate {
  /** From the subjectAltName's directory name (e.g. `id:00001014`). */
  tpmManufacturer: string | undefined;
  tpmModel: string | undefined;
  tpmVersion: string | undefined;
}

function toDer(input: Uint8Array | string): Uint8Array {
  if (typeof input !== 'string') return input;
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(input);
  if (!m) throw malformed('not a PEM certificate');
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** Every certificate of a PEM bundle (or the one DER certificate given). */
export function splitPem(input: Uint8Array | string): Uint8Array[] {
  if (typeof input !== 'string') return [input];
  const out: Uint8Array[] = [];
  for (const m of input.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g))
    out.push(toDer(m[0]));
  if (out.length === 0) throw malformed('no PEM certificate found');
  return out;
}

function nameText(name: Tlv): { text: string; attrs: Map<string, string> } {
  const parts: string[] = [];
  const attrs = new Map<string, string>();
  const rdns = children(name);
  while (!rdns.done) {
    const set = children(rdns.expect(TAG.SET, 'RDN'));
    while (!set.done) {
      const atv = children(set.expect(TAG.SEQUENCE, 'AttributeTypeAndValue'));
      const oid = decodeOid(atv.expect(TAG.OID, 'attribute type').value);
      const value = decodeString(atv.next());
      attrs.set(oid, value);
      parts.push(`${ATTRIBUTE_NAMES[oid] ?? oid}=${value}`);
    }
  }
  return { text: parts.join(', '), attrs };
}

function importSpki(spki: Tlv): { keyAlgorithm: string; publicKey: KeyObject } {
  const r = children(spki);
  const alg = r.expect(TAG.SEQUENCE, 'SubjectPublicKeyInfo.algorithm');
  const bits = r.expect(TAG.BIT_STRING, 'subjectPublicKey');
  r.end('SubjectPublicKeyInfo');
  const keyAlgorithm = decodeOid(children(alg).expect(TAG.OID, 'key algorithm').value);
  let der = spki.raw;
  if (keyAlgorithm === OID.rsaesOaep) {
    // TCG quirk: the EK's RSA key is labelled for OAEP. The key itself is a plain RSA key.
    der = derSeq(derSeq(derOid(OID.rsaEncryption), derTlv(TAG.NULL)), bits.raw);
  } else if (keyAlgorithm !== OID.rsaEncryption && keyAlgorithm !== OID.ecPublicKey) {
    throw new TpmError('TPM_ERR_EK_CERT_PROFILE', `unsupported public key algorithm ${keyAlgorithm}`);
  }
  try {
    if (keyAlgorithm !== OID.ecPublicKey && bits.value[0] === 0) {
      // An RSA key: the BIT STRING holds the PKCS#1 RSAPublicKey, which node imports ~20×
      // faster than the same key as SPKI (OpenSSL 3's generic decoder: ~120 µs per EK).
      const pkcs1 = readOne(bits.value.subarray(1), TAG.SEQUENCE, 'RSAPublicKey').raw;
      return {
        keyAlgorithm,
        publicKey: createPublicKey({
          key: Buffer.from(pkcs1.buffer, pkcs1.byteOffset, pkcs1.byteLength),
          format: 'der',
          type: 'pkcs1',
        }),
      };
    }
    return {
      keyAlgorithm,
      publicKey: createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }),
    };
  } catch (e) {
    throw malformed(`the public key cannot be read: ${(e as Error).message}`);
  }
}

function parseExtensions(t: Tlv): Extension[] {
  const seq = children(readOne(t.value, TAG.SEQUENCE, 'extensions'));
  const out: Extension[] = [];
  const seen = new Set<string>();
  while (!seq.done) {
    const e = children(seq.expect(TAG.SEQUENCE, 'Extension'));
    const oid = decodeOid(e.expect(TAG.OID, 'extnID').value);
    const crit = e.optional(TAG.BOOLEAN);
    const critical = crit !== undefined && crit.value.length === 1 && crit.value[0] !== 0;
    const value = e.expect(TAG.OCTET_STRING, 'extnValue').value;
    e.end('Extension');
    if (seen.has(oid)) throw malformed(`extension ${oid} appears twice`);
    seen.add(oid);
    out.push({ oid, critical, value });
  }
  return out;
}

/**
 * Parses an X.509 certificate (DER or PEM).
 *
 * @example
 *   const ca = parseCertificate(readFileSync('issuercert.pem', 'utf8'));
 */
export function parseCertificate(input: Uint8Array | string): Certificate {
  try {
    return parseCertificateInner(toDer(input));
  } catch (e) {
    if (e instanceof TpmError) throw e;
    throw malformed(String(e));
  }
}

function parseCertificateInner(der: Uint8Array): Certificate {
  const cert = children(readOne(der, TAG.SEQUENCE, 'Certificate'));
  const tbsTlv = cert.expect(TAG.SEQUENCE, 'tbsCertificate');
  const sigAlg = children(cert.expect(TAG.SEQUENCE, 'signatureAlgorithm'));
  const sigBits = cert.expect(TAG.BIT_STRING, 'signatureValue');
  cert.end('Certificate');
  const signatureAlgorithm = decodeOid(sigAlg.expect(TAG.OID, 'signature algorithm').value);
  const signatureParams = sigAlg.done ? undefined : sigAlg.next().raw;
  if (sigBits.value.length < 1 || sigBits.value[0] !== 0) throw malformed('signature has unused bits');
  const signature = sigBits.value.subarray(1);

  const tbs = children(tbsTlv);
  let version = 1;
  const v = tbs.optional(0xa0);
  if (v) version = Number(readOne(v.value, TAG.INTEGER, 'version').value[0] ?? 0) + 1;
  const serial = tbs.expect(TAG.INTEGER, 'serialNumber');
  const innerSigAlg = tbs.expect(TAG.SEQUENCE, 'signature');
  const innerOid = decodeOid(children(innerSigAlg).expect(TAG.OID, 'signature algorithm').value);
  if (innerOid !== signatureAlgorithm) throw malformed('the two signature algorithms differ');
  const issuer = tbs.expect(TAG.SEQUENCE, 'issuer');
  const validity = children(tbs.expect(TAG.SEQUENCE, 'validity'));
  const notBefore = decodeTime(validity.next());
  const notAfter = decodeTime(validity.next());
  validity.end('validity');
  const subject = tbs.expect(TAG.SEQUENCE, 'subject');
  const spki = tbs.expect(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  tbs.optional(0x81);
  tbs.optional(0x82);
  const extTlv = tbs.optional(0xa3);
  tbs.end('tbsCertificate');
  const extensions = extTlv ? parseExtensions(extTlv) : [];
  if (extensions.length > 0 && version !== 3) throw malformed('extensions in a certificate that is not v3');

  let isCa = false;
  let keyUsage: number | undefined;
  let extKeyUsage: string[] | undefined;
  for (const e of extensions) {
    if (e.oid === OID.basicConstraints) {
      const bc = children(readOne(e.value, TAG.SEQUENCE, 'basicConstraints'));
      const ca = bc.optional(TAG.BOOLEAN);
      isCa = ca !== undefined && ca.value[0] !== 0;
    } else if (e.oid === OID.keyUsage) {
      const bits = readOne(e.value, TAG.BIT_STRING, 'keyUsage').value;
      keyUsage = 0;
      for (let i = 1; i < bits.length && i < 3; i++) {
        for (let b = 0; b < 8; b++) if (bits[i]! & (0x80 >> b)) keyUsage |= 1 << ((i - 1) * 8 + b);
      }
    } else if (e.oid === OID.extKeyUsage) {
      const seq = children(readOne(e.value, TAG.SEQUENCE, 'extKeyUsage'));
      extKeyUsage = [];
      while (!seq.done) extKeyUsage.push(decodeOid(seq.expect(TAG.OID, 'KeyPurposeId').value));
    }
  }
  const { keyAlgorithm, publicKey } = importSpki(spki);
  return {
    der,
    tbs: tbsTlv.raw,
    version,
    serialNumber: toHex(serial.value),
    issuer: issuer.raw,
    subject: subject.raw,
    issuerText: nameText(issuer).text,
    subjectText: nameText(subject).text,
    notBefore,
    notAfter,
    spki: spki.raw,
    keyAlgorithm,
    publicKey,
    signatureAlgorithm,
    signatureParams,
    signature,
    extensions,
    isCa,
    keyUsage,
    extKeyUsage,
  };
}

/**
 * Parses an EK certificate and checks it against the TCG EK Credential Profile: not a CA,
 * an RSA or EC key, the EK EKU when an EKU is present, and no critical extension this
 * verifier does not understand. Reads the TPM manufacturer/model/version from the SAN.
 */
export function parseEkCertificate(input: Uint8Array | string): EkCertificate {
  const cert = parseCertificate(input);
  const profile = (why: string) => new TpmError('TPM_ERR_EK_CERT_PROFILE', `the EK certificate ${why}`);
  if (cert.isCa) throw profile('is a CA certificate');
  if (cert.extKeyUsage && !cert.extKeyUsage.includes(OID.ekCertificateEku)) {
    throw profile(`has an extended key usage without ${OID.ekCertificateEku} (EK certificate)`);
  }
  for (const e of cert.extensions) {
    if (e.critical && !UNDERSTOOD.has(e.oid)) throw profile(`has an unknown critical extension ${e.oid}`);
  }
  let tpm = new Map<string, string>();
  const san = cert.extensions.find((e) => e.oid === OID.subjectAltName);
  if (san) {
    try {
      const names = children(readOne(san.value, TAG.SEQUENCE, 'subjectAltName'));
      while (!names.done) {
        const gn = names.next();
        // directoryName [4] EXPLICIT Name: the TPM manufacturer attributes live here.
        if (gn.tag === 0xa4)
          tpm = new Map([...tpm, ...nameText(readOne(gn.value, TAG.SEQUENCE, 'directoryName')).attrs]);
      }
    } catch (e) {
      if (e instanceof TpmError) throw e;
      throw malformed(String(e));
    }
  }
  return {
    ...cert,
    tpmManufacturer: tpm.get(OID.tpmManufacturer),
    tpmModel: tpm.get(OID.tpmModel),
    tpmVersion: tpm.get(OID.tpmVersion),
  };
}

const HASH_OIDS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

const SIGNATURE_ALGORITHMS: Record<string, { hash: string; kind: 'rsa' | 'ecdsa' }> = {
  '1.2.840.113549.1.1.5': { hash: 'sha1', kind: 'rsa' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', kind: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', kind: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', kind: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', kind: 'ecdsa' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', kind: 'ecdsa' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', kind: 'ecdsa' },
};

/** True when `issuer`'s key signed `cert`. */
export function isSignedBy(cert: Certificate, issuer: Certificate): boolean {
  try {
    const alg = SIGNATURE_ALGORITHMS[cert.signatureAlgorithm];
    if (alg) return verify(alg.hash, cert.tbs, issuer.publicKey, cert.signature);
    if (cert.signatureAlgorithm === '1.2.840.113549.1.1.10' && cert.signatureParams) {
      // RSASSA-PSS-params: [0] hashAlgorithm, [1] maskGenAlgorithm, [2] saltLength.
      const p = children(readOne(cert.signatureParams, TAG.SEQUENCE, 'RSASSA-PSS-params'));
      let hashName = 'sha1';
      let saltLength = 20;
      while (!p.done) {
        const f = p.next();
        if (f.tag === 0xa0) {
          const oid = decodeOid(
            children(readOne(f.value, TAG.SEQUENCE, 'hashAlgorithm')).expect(TAG.OID, 'hash').value,
          );
          hashName = HASH_OIDS[oid] ?? '';
        } else if (f.tag === 0xa2) {
          saltLength = Number.parseInt(toHex(readOne(f.value, TAG.INTEGER, 'saltLength').value), 16);
        }
      }
      if (!hashName) return false;
      return verify(
        hashName,
        cert.tbs,
        { key: issuer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength },
        cert.signature,
      );
    }
    return false;
  } catch {
    return false;
  }
}

function checkValidity(cert: Certificate, now: Date, role: string): void {
  if (now < cert.notBefore || now > cert.notAfter) {
    throw new TpmError(
      'TPM_ERR_EK_CERT_EXPIRED',
      `the ${role} certificate (${cert.subjectText || cert.issuerText}) is valid from ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}, not now`,
    );
  }
}

function canIssue(ca: Certificate): boolean {
  const KEY_CERT_SIGN = 1 << 5;
  return ca.isCa && (ca.keyUsage === undefined || (ca.keyUsage & KEY_CERT_SIGN) !== 0);
}

/**
 * Verifies that the EK certificate chains to one of `roots` (the configured
 * `ekcert_allowed_cas`), possibly through `intermediates`, and that every certificate on
 * the way is valid at `now`. Returns the chain, leaf first, allowed CA last.
 *
 * @example
 *   verifyEkCertificate(ekCertDer, { roots: [allowedCaPem], now: clock.now() })
 */
export function verifyEkCertificate(
  input: EkCertificate | Uint8Array | string,
  opts: { roots: (Uint8Array | string)[]; intermediates?: (Uint8Array | string)[]; now: Date },
): { certificate: EkCertificate; chain: Certificate[] } {
  const leaf = typeof input === 'object' && 'der' in input ? input : parseEkCertificate(input);
  const roots = opts.roots.flatMap(splitPem).map(parseCertificate);
  const intermediates = (opts.intermediates ?? []).flatMap(splitPem).map(parseCertificate);
  if (roots.length === 0)
    throw new TpmError('TPM_ERR_EK_CERT_UNTRUSTED', 'no CA is allowed to issue EK certificates');
  checkValidity(leaf, opts.now, 'EK');
  const chain: Certificate[] = [leaf];
  let current: Certificate = leaf;
  for (let depth = 0; depth < 8; depth++) {
    const issuedBy = (c: Certificate) =>
      bytesEqual(c.subject, current.issuer) && canIssue(c) && isSignedBy(current, c);
    const root = roots.find(issuedBy);
    if (root) {
      checkValidity(root, opts.now, 'CA');
      chain.push(root);
      return { certificate: leaf, chain };
    }
    const next = intermediates.find((c) => issuedBy(c) && !chain.includes(c));
    if (!next) break;
    checkValidity(next, opts.now, 'intermediate CA');
    chain.push(next);
    current = next;
  }
  throw new TpmError(
    'TPM_ERR_EK_CERT_UNTRUSTED',
    `the EK certificate (issued by ${leaf.issuerText || 'an unnamed CA'}) does not chain to an allowed CA`,
  );
}

/**
 * How far `checkEkCertificateChain` verified an EK certificate without an allowed CA:
 * `root` — signatures checked up to a self-signed root; `issuer` — up to an issuer whose own
 * issuer was not at hand; `none` — no issuer at hand, so the signature is unchecked.
 */
export type EkChainReach = 'root' | 'issuer' | 'none';

/**
 * Verifies an EK certificate as far as the certificates at hand go, trusting no CA: its
 * validity dates, then issuer by issuer among `issuers` (the TPM's EK certificate chain, NV
 * 0x01c00100–0x01c001ff) each signature, CA flag and validity, up to a self-signed root.
 * A certificate whose signature does not verify with the key of the certificate it names as
 * issuer is refused (TPM_ERR_EK_CERT_SIGNATURE): it was altered, or forged under that name.
 * Nothing here makes the certificate trusted — the TPM supplies the whole chain, root
 * included; only `verifyEkCertificate` with configured roots does.
 *
 * @example
 *   const { reach, chain } = checkEkCertificateChain(ekCertDer, { issuers: chainDers, now });
 */
export function checkEkCertificateChain(
  input: EkCertificate | Uint8Array | string,
  opts: { issuers?: (Uint8Array | string)[]; now: Date },
): { certificate: EkCertificate; chain: Certificate[]; reach: EkChainReach } {
  const leaf = typeof input === 'object' && 'der' in input ? input : parseEkCertificate(input);
  const pool = (opts.issuers ?? []).flatMap(splitPem).map(parseCertificate);
  checkValidity(leaf, opts.now, 'EK');
  const chain: Certificate[] = [leaf];
  let current: Certificate = leaf;
  const name = (c: Certificate) => c.subjectText || (c === leaf ? 'the EK certificate' : 'an unnamed CA');
  for (let depth = 0; depth < 8; depth++) {
    if (current !== leaf && bytesEqual(current.subject, current.issuer)) {
      if (!isSignedBy(current, current)) {
        throw new TpmError(
          'TPM_ERR_EK_CERT_SIGNATURE',
          `the self-signed root ${name(current)} of the EK certificate's chain is not signed by its own key`,
        );
      }
      return { certificate: leaf, chain, reach: 'root' };
    }
    const named = pool.filter((c) => bytesEqual(c.subject, current.issuer) && !chain.includes(c));
    if (named.length === 0) break;
    const next = named.find((c) => isSignedBy(current, c));
    if (!next) {
      throw new TpmError(
        'TPM_ERR_EK_CERT_SIGNATURE',
        `${current === leaf ? 'the EK certificate' : `the CA certificate ${name(current)}`} is not signed by ` +
          `its issuer ${current.issuerText || 'an unnamed CA'} (the signature does not verify with that ` +
          "certificate's key): it was altered or forged",
      );
    }
    if (!canIssue(next)) {
      throw new TpmError(
        'TPM_ERR_EK_CERT_SIGNATURE',
        `the issuer ${name(next)} of the EK certificate's chain is not a CA allowed to sign certificates`,
      );
    }
    checkValidity(next, opts.now, 'CA');
    chain.push(next);
    current = next;
  }
  return { certificate: leaf, chain, reach: chain.length > 1 ? 'issuer' : 'none' };
}

/** Refuses an EK public area whose key is not the one in the EK certificate. */
export function checkEkMatchesCertificate(ekPublic: TpmtPublic, cert: Certificate): void {
  // KeyObject.equals compares the keys themselves (no DER export: ~20× the cost under OpenSSL 3).
  if (!publicKeyFromTpmt(ekPublic).equals(cert.publicKey)) {
    throw new TpmError('TPM_ERR_EK_MISMATCH', 'the EK public key is not the key of the EK certificate');
  }
}
