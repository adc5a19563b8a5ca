/**
 * A few DER operations on X.509 certificates that @peculiar/x509 gets wrong for Warden.
 *
 * Why: Warden's OID arc is `2.25.<128-bit UUID>` (DESIGN §4). asn1js, under @peculiar/x509,
 * encodes such OIDs from a string correctly but decodes arcs above 2^53 to a lossy hex form, so
 * (a) `X509CertificateGenerator` (which re-decodes the extensions it is given) writes them as
 * `2.25`, and (b) a parsed certificate reports them as `2.25.{…}`. So we read the extension
 * list ourselves (`readCertificateExtensions`) and add Warden's extensions to a certificate
 * @peculiar/x509 built by splicing them into its TBSCertificate and signing again
 * (`addCertificateExtensions`). Everything else stays with @peculiar/x509.
 * Strict DER: definite minimal lengths, bounds-checked; bad input is WARDEN_ERR_BAD_CERTIFICATE.
 * Who may import: the certs module; the two functions above are re-exported from `@warden/api`.
 * Tested by `identity.test.ts` and the server CA tests (with `openssl verify`).
 */

import { WardenError } from '../errors';

const TAG = {
  boolean: 0x01,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  ext: 0xa3,
} as const;

/** An X.509 extension: dotted OID, criticality and the DER value inside extnValue. */
export interface CertificateExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

function bad(reason: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `malformed certificate: ${reason}`);
}

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  at: number;
  start: number;
  end: number;
}

/** Reads one TLV at `at` (single-byte tags, definite minimal lengths). */
function readTlv(der: Uint8Array, at: number, limit = der.length): Tlv {
  if (at + 2 > limit) throw bad('truncated DER');
  const tag = der[at] as number;
  if ((tag & 0x1f) === 0x1f) throw bad('multi-byte DER tags are not supported');
  let len = der[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw bad('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] as number);
    if (len < 0x80 || der[start] === 0) throw bad('non-minimal DER length');
    start += n;
  }
  if (start + len > limit) throw bad('truncated DER');
  return { tag, at, start, end: start + len };
}

function expect(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw bad(`expected ${what}`);
  return t;
}

/** The children of a constructed TLV, which must exactly fill it. */
function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(der, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** A DER TLV with a minimal definite length. */
export function derTlv(tag: number, content: Uint8Array): Buffer {
  const len = content.length;
  // Tag, then the length: one byte below 0x80, else 0x80 | its byte count and those bytes.
  let head = 2;
  if (len >= 0x80) for (let n = len; n > 0; n = Math.floor(n / 256)) head++;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = tag;
  if (len < 0x80) out[1] = len;
  else {
    out[1] = 0x80 | (head - 2);
    for (let i = head - 1, n = len; i >= 2; i--, n = Math.floor(n / 256)) out[i] = n & 0xff;
  }
  out.set(content, head);
  return out;
}

/** OIDs already encoded (the same few dozen are written into every certificate). */
const encodedOids = new Map<string, Buffer>();

/** DER content of an OBJECT IDENTIFIER from its dotted form (arcs of any size). */
export function encodeOid(dotted: string): Buffer {
  let encoded = encodedOids.get(dotted);
  if (!encoded) {
    encoded = encodeOidOnce(dotted);
    if (encodedOids.size < 1024) encodedOids.set(dotted, encoded);
  }
  // A copy: the caller may do what it likes with its buffer.
  return Buffer.from(encoded);
}

function encodeOidOnce(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new Error(`invalid OID ${dotted}`);
  const arcs = dotted.split('.').map(BigInt);
  const [a = 0n, b = 0n, ...rest] = arcs;
  if (a < 2n && b >= 40n) throw new Error(`invalid OID ${dotted}`);
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...rest]) {
    const septets: number[] = [];
    let v = arc;
    do {
      septets.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    out.push(...septets.map((s, i) => (i < septets.length - 1 ? s | 0x80 : s)));
  }
  return Buffer.from(out);
}

/** The dotted form of OBJECT IDENTIFIER content (arcs of any size). */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0) throw bad('empty OID');
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (let i = 0; i < content.length; i++) {
    const byte = content[i] as number;
    if (fresh && byte === 0x80) throw bad('non-minimal OID arc');
    fresh = false;
    v = (v << 7n) | BigInt(byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(v);
      v = 0n;
      fresh = true;
    }
  }
  if (!fresh) throw bad('truncated OID');
  const first = arcs[0] as bigint;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** The DER of one Extension (SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }). */
export function encodeExtension(ext: CertificateExtension): Buffer {
  return derTlv(
    TAG.sequence,
    Buffer.concat([
      derTlv(TAG.oid, encodeOid(ext.oid)),
      ext.critical ? Buffer.from([TAG.boolean, 1, 0xff]) : Buffer.alloc(0),
      derTlv(TAG.octetString, ext.value),
    ]),
  );
}

/** Certificate → TBSCertificate fields, signatureAlgorithm, and the extensions field and list (if any). */
function walk(der: Uint8Array) {
  const cert = expect(readTlv(der, 0), TAG.sequence, 'Certificate');
  if (cert.end !== der.length) throw bad('trailing bytes after the certificate');
  const [tbs, sigAlg, sigValue, ...extra] = children(der, cert);
  if (!tbs || !sigAlg || !sigValue || extra.length > 0) throw bad('Certificate must have three fields');
  expect(tbs, TAG.sequence, 'TBSCertificate');
  expect(sigAlg, TAG.sequence, 'signatureAlgorithm');
  expect(sigValue, TAG.bitString, 'signatureValue');
  const fields = children(der, tbs);
  const extField = fields.find((f) => f.tag === TAG.ext);
  const list = extField
    ? expect(readTlv(der, extField.start, extField.end), TAG.sequence, 'Extensions')
    : undefined;
  if (extField && list && list.end !== extField.end) throw bad('trailing bytes after the extensions');
  return { sigAlg, fields, extField, list };
}

/** A certificate's DER from PEM (exactly one CERTIFICATE block) or DER (returned as is). */
export function certificateDer(cert: string | Uint8Array): Buffer {
  if (typeof cert !== 'string') return Buffer.from(cert);
  const m = /^\s*-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\s*$/.exec(
    cert,
  );
  if (!m) throw bad('expected one PEM CERTIFICATE block');
  return Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
}

/** Every extension of a DER certificate, in order, OIDs decoded exactly. */
export function readCertificateExtensions(der: Uint8Array): CertificateExtension[] {
  const { list } = walk(der);
  if (!list) return [];
  return children(der, list).map((e) => {
    const parts = children(der, expect(e, TAG.sequence, 'Extension'));
    const [oidTlv, second, third, ...more] = parts;
    if (!oidTlv || !second || more.length > 0) throw bad('bad Extension');
    expect(oidTlv, TAG.oid, 'extnID');
    let critical = false;
    let valueTlv = second;
    if (third) {
      expect(second, TAG.boolean, 'critical');
      if (second.end - second.start !== 1 || der[second.start] !== 0xff)
        throw bad('critical must be DER TRUE');
      critical = true;
      valueTlv = third;
    }
    expect(valueTlv, TAG.octetString, 'extnValue');
    return {
      oid: decodeOid(der.subarray(oidTlv.start, oidTlv.end)),
      critical,
      value: Buffer.from(der.subarray(valueTlv.start, valueTlv.end)),
    };
  });
}

/**
 * Adds `extensions` to a DER certificate (which must already have an extensions field) and signs
 * the new TBSCertificate with `signTbs` (which must use the certificate's signature algorithm,
 * e.g. `(tbs) => sign('sha256', tbs, caEcdsaKey)` for ecdsa-with-SHA256). Returns the new DER.
 */
export function addCertificateExtensions(
  der: Uint8Array,
  extensions: readonly CertificateExtension[],
  signTbs: (tbs: Buffer) => Uint8Array,
): Buffer {
  const { sigAlg, fields, extField, list } = walk(der);
  if (!extField || !list)
    throw new Error('addCertificateExtensions: the certificate has no extensions field');
  const newList = derTlv(
    TAG.sequence,
    Buffer.concat([der.subarray(list.start, list.end), ...extensions.map(encodeExtension)]),
  );
  const newTbs = derTlv(
    TAG.sequence,
    Buffer.concat(fields.map((f) => (f === extField ? derTlv(TAG.ext, newList) : der.subarray(f.at, f.end)))),
  );
  const signature = signTbs(newTbs);
  return derTlv(
    TAG.sequence,
    Buffer.concat([
      newTbs,
      der.subarray(sigAlg.at, sigAlg.end),
      derTlv(TAG.bitString, Buffer.concat([Buffer.from([0]), signature])),
    ]),
  );
}
