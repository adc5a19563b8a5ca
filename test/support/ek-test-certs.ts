/**
 * Test-only: builds X.509 certificates with node:crypto and the DER writer — CAs and EK
 * certificates with the TCG quirks (OAEP-labelled RSA keys, critical SAN with TPM
 * attributes, the EK EKU) — so the EK verifier can be tested without a TPM.
 * Who may import: *.test.ts files (the TPM package's EK verifier tests).
 */
import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { concatBytes } from '../../packages/tpm/src/marshal';
import { children, derOid, derSeq, derTlv, readOne, TAG } from '../../packages/tpm/src/verify/der';
import { OID } from '../../packages/tpm/src/verify/ek-cert';

export interface TestKey {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function rsaKey(bits = 2048): TestKey {
  return generateKeyPairSync('rsa', { modulusLength: bits });
}

export function ecKey(curve = 'P-256'): TestKey {
  return generateKeyPairSync('ec', { namedCurve: curve });
}

const utf8 = (s: string) => derTlv(TAG.UTF8_STRING, new TextEncoder().encode(s));

export function name(attrs: [string, string][]): Uint8Array {
  return derSeq(...attrs.map(([oid, v]) => derTlv(TAG.SET, derSeq(derOid(oid), utf8(v)))));
}

export const cn = (s: string) => name([['2.5.4.3', s]]);

function time(d: Date): Uint8Array {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return d.getUTCFullYear() >= 2050
    ? derTlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(`${iso}Z`))
    : derTlv(TAG.UTC_TIME, new TextEncoder().encode(`${iso.slice(2)}Z`));
}

function ext(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return derSeq(
    derOid(oid),
    ...(critical ? [derTlv(TAG.BOOLEAN, Uint8Array.of(0xff))] : []),
    derTlv(TAG.OCTET_STRING, value),
  );
}

export interface CertSpec {
  subject: Uint8Array;
  issuer: Uint8Array;
  publicKey: KeyObject;
  signer: KeyObject;
  serial?: number;
  notBefore?: Date;
  notAfter?: Date;
  ca?: boolean;
  /** Label an RSA key id-RSAES-OAEP, as some TPM vendors do. */
  oaep?: boolean;
  eku?: string[];
  /** TPM manufacturer, model, version in a critical SAN directory name. */
  tpm?: { manufacturer: string; model: string; version: string };
  extraExtensions?: { oid: string; critical: boolean; value: Uint8Array }[];
  /** The SubjectPublicKeyInfo as given (malformed keys), instead of `publicKey`'s. */
  spki?: Uint8Array;
}

export function makeCert(spec: CertSpec): Uint8Array {
  let spki: Uint8Array = spec.spki ?? new Uint8Array(spec.publicKey.export({ format: 'der', type: 'spki' }));
  if (spec.oaep) {
    // Swap the AlgorithmIdentifier for id-RSAES-OAEP (no parameters), keep the key bits.
    const parts = children(readOne(spki, TAG.SEQUENCE, 'spki'));
    parts.next();
    spki = derSeq(derSeq(derOid(OID.rsaesOaep)), parts.next().raw);
  }
  const exts: Uint8Array[] = [];
  if (spec.ca !== undefined) {
    exts.push(
      ext(OID.basicConstraints, true, derSeq(...(spec.ca ? [derTlv(TAG.BOOLEAN, Uint8Array.of(0xff))] : []))),
    );
    if (spec.ca) exts.push(ext(OID.keyUsage, true, derTlv(TAG.BIT_STRING, Uint8Array.of(1, 0x06))));
  }
  if (spec.eku) exts.push(ext(OID.extKeyUsage, false, derSeq(...spec.eku.map(derOid))));
  if (spec.tpm) {
    const dir = name([
      [OID.tpmManufacturer, spec.tpm.manufacturer],
      [OID.tpmModel, spec.tpm.model],
      [OID.tpmVersion, spec.tpm.version],
    ]);
    exts.push(ext(OID.subjectAltName, true, derSeq(derTlv(0xa4, dir))));
  }
  for (const e of spec.extraExtensions ?? []) exts.push(ext(e.oid, e.critical, e.value));
  const rsaSigner = spec.signer.asymmetricKeyType === 'rsa';
  const sigAlg = rsaSigner
    ? derSeq(derOid('1.2.840.113549.1.1.11'), derTlv(TAG.NULL))
    : derSeq(derOid('1.2.840.10045.4.3.2'));
  const tbs = derSeq(
    derTlv(0xa0, derTlv(TAG.INTEGER, Uint8Array.of(2))),
    derTlv(TAG.INTEGER, Uint8Array.of(spec.serial ?? 1)),
    sigAlg,
    spec.issuer,
    derSeq(
      time(spec.notBefore ?? new Date('2024-01-01T00:00:00Z')),
      time(spec.notAfter ?? new Date('9999-12-31T23:59:59Z')),
    ),
    spec.subject,
    spki,
    ...(exts.length > 0 ? [derTlv(0xa3, derSeq(...exts))] : []),
  );
  const sig = createSign('sha256').update(tbs).sign(spec.signer);
  return derSeq(tbs, sigAlg, derTlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(0), new Uint8Array(sig))));
}
