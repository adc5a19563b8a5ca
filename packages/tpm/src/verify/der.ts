/**
 * A small DER reader and writer: just what X.509 EK certificates need (TLVs, OIDs, times,
 * names). Bounds-checked; every failure is `TPM_ERR_EK_CERT_MALFORMED`. Indefinite lengths
 * and lengths beyond the input are refused before anything is read.
 */
import { TpmError } from '../errors';
import { concatBytes } from '../marshal';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface Tlv {
  tag: number;
  /** The contents. */
  value: Uint8Array;
  /** Tag, length and contents. */
  raw: Uint8Array;
}

export function malformed(message: string): TpmError {
  return new TpmError('TPM_ERR_EK_CERT_MALFORMED', `the certificate is malformed: ${message}`);
}

export class DerReader {
  private offset = 0;

  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.buf.length;
  }

  peekTag(): number | undefined {
    return this.done ? undefined : this.buf[this.offset];
  }

  next(): Tlv {
    const start = this.offset;
    if (this.buf.length - start < 2) throw malformed('truncated TLV');
    const tag = this.buf[start]!;
    if ((tag & 0x1f) === 0x1f) throw malformed('multi-byte tags are not used in certificates');
    let len = this.buf[start + 1]!;
    let p = start + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0) throw malformed('indefinite length');
      if (n > 4) throw malformed('length field too long');
      if (this.buf.length - p < n) throw malformed('truncated length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + this.buf[p + i]!;
      p += n;
    }
    if (len > this.buf.length - p) throw malformed(`a value of ${len} bytes runs past the end`);
    this.offset = p + len;
    return { tag, value: this.buf.subarray(p, p + len), raw: this.buf.subarray(start, p + len) };
  }

  expect(tag: number, what: string): Tlv {
    const t = this.next();
    if (t.tag !== tag)
      throw malformed(`${what}: expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`);
    return t;
  }

  /** The next TLV if it has `tag`, else undefined (for OPTIONAL and DEFAULT fields). */
  optional(tag: number): Tlv | undefined {
    return this.peekTag() === tag ? this.next() : undefined;
  }

  end(what: string): void {
    if (!this.done) throw malformed(`${what}: unexpected trailing data`);
  }
}

/** Reads `bytes` as exactly one TLV with `tag`. */
export function readOne(bytes: Uint8Array, tag: number, what: string): Tlv {
  const r = new DerReader(bytes);
  const t = r.expect(tag, what);
  r.end(what);
  return t;
}

export function children(t: Tlv): DerReader {
  return new DerReader(t.value);
}

export function decodeOid(value: Uint8Array): string {
  if (value.length === 0) throw malformed('empty OID');
  const arcs: bigint[] = [];
  let acc = 0n;
  for (let i = 0; i < value.length; i++) {
    const b = value[i]!;
    if (acc === 0n && b === 0x80) throw malformed('non-minimal OID arc');
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(acc);
      acc = 0n;
    } else if (i === value.length - 1) throw malformed('truncated OID');
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

function utcDate(y: number, mo: number, d: number, h: number, mi: number, se: number, text: string): Date {
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
  // Date.UTC rolls over out-of-range fields (month 13): refuse them instead.
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) {
    throw malformed(`invalid time "${text}"`);
  }
  return date;
}

export function decodeTime(t: Tlv): Date {
  const s = new TextDecoder().decode(t.value);
  const utc = t.tag === TAG.UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (utc) {
    const m = utc;
    const yy = Number(m[1]);
    return utcDate(yy >= 50 ? 1900 + yy : 2000 + yy, +m[2]!, +m[3]!, +m[4]!, +m[5]!, +m[6]!, s);
  }
  const gen = t.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (gen) {
    const m = gen;
    return utcDate(+m[1]!, +m[2]!, +m[3]!, +m[4]!, +m[5]!, +m[6]!, s);
  }
  throw malformed(`unsupported time "${s}"`);
}

/** A string-valued attribute (UTF8String, PrintableString, IA5String, …). */
export function decodeString(t: Tlv): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(t.value);
}

// ------------------------------------------------------------------------------- writer

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

export function derTlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concatBytes(...content);
  return concatBytes(Uint8Array.of(tag), lengthBytes(body.length), body);
}

export const derSeq = (...content: Uint8Array[]): Uint8Array => derTlv(TAG.SEQUENCE, ...content);

export function derOid(oid: string): Uint8Array {
  const arcs = oid.split('.').map((a) => BigInt(a));
  const out: number[] = [];
  const enc = (v: bigint) => {
    const bytes: number[] = [Number(v & 0x7fn)];
    for (v >>= 7n; v > 0n; v >>= 7n) bytes.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...bytes);
  };
  enc(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) enc(a);
  return derTlv(TAG.OID, Uint8Array.from(out));
}
