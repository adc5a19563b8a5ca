/**
 * Big-endian byte writer and bounds-checked reader for TPM structures. Every read checks
 * the remaining length first and fails with `TPM_ERR_MARSHAL`; sized (TPM2B) and counted
 * (TPML) reads are limited before anything is allocated, so hostile input can't make the
 * parser allocate more than the input's own size.
 */
import { TpmError } from '../errors';

export class Writer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  u8(v: number): this {
    return this.push(Uint8Array.of(v & 0xff));
  }

  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v & 0xffff);
    return this.push(b);
  }

  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    return this.push(b);
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v));
    return this.push(b);
  }

  bytes(b: Uint8Array): this {
    return this.push(b);
  }

  /** A TPM2B: u16 size then the bytes. */
  tpm2b(b: Uint8Array, what = 'TPM2B'): this {
    if (b.length > 0xffff) throw new TpmError('TPM_ERR_BAD_ARGUMENT', `${what} is longer than 65535 bytes`);
    return this.u16(b.length).bytes(b);
  }

  /** A TPM2B wrapping a marshaled structure. */
  sized(fill: (w: Writer) => void, what = 'TPM2B'): this {
    const inner = new Writer();
    fill(inner);
    return this.tpm2b(inner.finish(), what);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  private push(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }
}

export class Reader {
  private offset = 0;
  private readonly view: DataView;

  private readonly buf: Uint8Array;

  constructor(
    input: Uint8Array,
    /** The structure being read, for error messages. */
    readonly what = 'TPM structure',
  ) {
    // A plain view, so that values read from a Buffer are plain Uint8Arrays too.
    this.buf = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return v;
  }

  /** `n` bytes, copied (callers may keep them after the input buffer is reused). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** A TPM2B: u16 size then that many bytes; `max` bounds the size (e.g. a digest's 64). */
  tpm2b(max = 0xffff, field = 'TPM2B'): Uint8Array {
    const size = this.u16();
    if (size > max) this.fail(`${field} is ${size} bytes, more than the ${max} allowed`);
    return this.bytes(size);
  }

  /** A TPM2B holding a structure: reads it with `read`, which must consume it exactly. */
  sized<T>(read: (r: Reader) => T, field = 'TPM2B'): T {
    const body = this.tpm2b(0xffff, field);
    const inner = new Reader(body, `${this.what} ${field}`);
    const v = read(inner);
    inner.end();
    return v;
  }

  /** A u32 element count, checked against `max` and against what the input can still hold. */
  count(max: number, minElementSize: number, field: string): number {
    const n = this.u32();
    if (n > max) this.fail(`${field} has ${n} entries, more than the ${max} allowed`);
    if (n * minElementSize > this.remaining) this.fail(`${field} has ${n} entries but the input ends first`);
    return n;
  }

  /** The rest of the input. */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** Fails unless every byte was consumed. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`);
  }

  fail(message: string): never {
    throw new TpmError('TPM_ERR_MARSHAL', `${this.what}: ${message}`, {
      details: { offset: this.offset },
    });
  }

  private need(n: number): void {
    if (n > this.remaining) {
      this.fail(`truncated: needed ${n} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'not a hex string');
  return new Uint8Array(Buffer.from(s, 'hex'));
}
