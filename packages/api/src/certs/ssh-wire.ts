/**
 * The SSH wire encoding (RFC 4251 §5) used by OpenSSH public keys and certificates:
 * uint32, uint64, string and name-list, read and written by two small classes.
 * The reader checks every length against what is left, so truncated or garbage input becomes
 * a WardenError('WARDEN_ERR_BAD_CERTIFICATE'), never a RangeError or an out-of-bounds read.
 * Who may import: the certs module only (not exported from `@warden/api`).
 */

import { WardenError } from '../errors';

/** Largest single string we accept; OpenSSH's own limit for a whole key blob is 16 KiB-ish. */
const MAX_STRING = 1 << 20;

export class SshReader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Uint8Array) {
    this.#buf = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) throw malformed(`truncated ${what}`);
  }

  uint32(what = 'uint32'): number {
    this.#need(4, what);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint64(what = 'uint64'): bigint {
    this.#need(8, what);
    const v = this.#buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return v;
  }

  /** A length-prefixed byte string (a copy). */
  bytes(what = 'string'): Buffer {
    const len = this.uint32(`${what} length`);
    if (len > MAX_STRING) throw malformed(`${what} too long`);
    this.#need(len, what);
    const v = Buffer.from(this.#buf.subarray(this.#pos, this.#pos + len));
    this.#pos += len;
    return v;
  }

  /** A length-prefixed UTF-8 string; rejects invalid UTF-8 and NUL bytes. */
  string(what = 'string'): string {
    const raw = this.bytes(what);
    let s: string;
    try {
      s = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw malformed(`${what} is not valid UTF-8`);
    }
    if (s.includes('\0')) throw malformed(`${what} contains a NUL byte`);
    return s;
  }

  /** Fails unless every byte was consumed. */
  end(what: string): void {
    if (this.remaining !== 0) throw malformed(`trailing bytes after ${what}`);
  }
}

/**
 * Writes into one buffer that grows as needed (a certificate is written with a few dozen
 * fields; a buffer per field made it allocation-bound).
 */
export class SshWriter {
  #buf = Buffer.allocUnsafe(512);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(bigger, 0, 0, this.#len);
    this.#buf = bigger;
  }

  uint32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`uint32 out of range: ${v}`);
    this.#room(4);
    this.#buf.writeUInt32BE(v, this.#len);
    this.#len += 4;
    return this;
  }

  uint64(v: bigint): this {
    if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`uint64 out of range: ${v}`);
    this.#room(8);
    this.#buf.writeBigUInt64BE(v, this.#len);
    this.#len += 8;
    return this;
  }

  bytes(v: Uint8Array): this {
    this.uint32(v.length);
    return this.raw(v);
  }

  string(v: string): this {
    const n = Buffer.byteLength(v, 'utf8');
    this.uint32(n);
    this.#room(n);
    this.#len += this.#buf.write(v, this.#len, 'utf8');
    return this;
  }

  /** Appends bytes without a length prefix. */
  raw(v: Uint8Array): this {
    this.#room(v.length);
    this.#buf.set(v, this.#len);
    this.#len += v.length;
    return this;
  }

  /** What was written (a buffer of its own: later writes don't change it). */
  toBuffer(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}

/** The error every parser in this module throws for bad input. */
export function malformed(reason: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `malformed SSH data: ${reason}`);
}
