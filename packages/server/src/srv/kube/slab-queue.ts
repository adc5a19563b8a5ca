/**
 * The API server → kubectl direction of a relayed exec/attach/port-forward stream, without a
 * buffer per read and without gathering copies. The upstream TLS socket reads straight into
 * reused slabs (`tls.connect({ onread: { buffer: q.next, callback } })`: Node decrypts each TLS
 * record into the buffer `next()` handed out, where otherwise it would allocate a 16 KiB buffer
 * per record for GC to free), and what was read goes to kubectl as one contiguous write at a
 * time: whatever arrived while a write was in flight leaves as the next write, one buffer, so
 * Node's TLS layer encrypts it in place (several queued buffers it would first copy into one).
 * A region of a slab is handed out again only after the write that carried it has completed.
 * Internal to `srv/kube`; tested by `slab-queue.test.ts` and the exec streams of `test/kube`.
 */

/** A TLS record's plaintext is at most 16 KiB, and Node hands them over one at a time. */
export const READ_SIZE = 16 * 1024;
/** The first slab: an interactive session's reads fit; one that fills it streams in bulk. */
const FIRST_SLAB_SIZE = 2 * READ_SIZE;
const SLAB_SIZE = 256 * 1024;
/** Bulk slabs kept for reuse once written (enough for a queue at the reader's pause mark). */
const SPARE_MAX = 4;

interface Slab {
  buf: Buffer;
  /** Segments of it queued or being written. */
  refs: number;
}

interface Segment {
  buf: Buffer;
  /** Undefined for a pushed buffer (the caller's, never reused here). */
  slab?: Slab | undefined;
  done?: (() => void) | undefined;
}

export class SlabQueue {
  readonly #write: (buf: Buffer, done: () => void) => void;
  readonly #onWritten: (() => void) | undefined;
  #slab: Slab = { buf: Buffer.allocUnsafe(FIRST_SLAB_SIZE), refs: 0 };
  /** Where the buffer last handed out by `next()` starts in `#slab`. */
  #off = 0;
  /** `#slab[#start, #off)`: read, not yet queued. */
  #start = 0;
  /** Cut parts of slabs and pushed buffers, in order, before `#slab[#start, #off)`. */
  readonly #queue: Segment[] = [];
  readonly #spare: Slab[] = [];
  #writing: Segment | undefined;
  #scheduled = false;
  #queued = 0;
  readonly #whenDrained: (() => void)[] = [];

  /**
   * `write` sends one buffer and calls `done` once the buffer may be reused (a socket write's
   * callback). `onWritten` runs after each completed write (to resume a paused reader).
   */
  constructor(write: (buf: Buffer, done: () => void) => void, onWritten?: () => void) {
    this.#write = write;
    this.#onWritten = onWritten;
  }

  /** Bytes read (or pushed) and not yet written, including the write in flight. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * The buffer the next read lands in (`onread.buffer`, called once per read). Exactly one
   * `commit` must follow for it before `next()` is called again.
   */
  readonly next = (): Buffer => {
    // Nothing of this slab pending or being written: start over at its beginning (warm in cache).
    if (this.#start === this.#off && this.#slab.refs === 0) this.#off = this.#start = 0;
    if (this.#slab.buf.length - this.#off < READ_SIZE) {
      this.#cut();
      if (this.#slab.refs === 0) this.#keep(this.#slab);
      this.#slab = this.#spare.pop() ?? { buf: Buffer.allocUnsafe(SLAB_SIZE), refs: 0 };
      this.#off = this.#start = 0;
    }
    return this.#slab.buf.subarray(this.#off, this.#off + READ_SIZE);
  };

  /** `n` bytes landed at the start of the buffer `next()` handed out; they are queued for writing. */
  commit(n: number): void {
    if (n <= 0) return;
    this.#off += n;
    this.#queued += n;
    this.#schedule();
  }

  /**
   * Queues a buffer of the caller's (never reused here) after everything read so far; `done`
   * runs once it is written.
   */
  push(buf: Buffer, done?: () => void): void {
    if (buf.length === 0 && !done) return;
    this.#cut();
    this.#queue.push({ buf, done });
    this.#queued += buf.length;
    this.#schedule();
  }

  /** Runs `f` once everything read or pushed so far is written (at once when it is). */
  drained(f: () => void): void {
    if (this.#queued === 0 && !this.#writing && this.#queue.length === 0) f();
    else this.#whenDrained.push(f);
  }

  /** Moves what was read into the current slab and not yet queued to the queue. */
  #cut(): void {
    if (this.#off === this.#start) return;
    this.#queue.push({ buf: this.#slab.buf.subarray(this.#start, this.#off), slab: this.#slab });
    this.#slab.refs++;
    this.#start = this.#off;
  }

  // Reads of one event-loop turn go out together: the flush runs once the poll phase is over.
  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#writing) return;
    if (this.#queue.length === 0) this.#cut();
    const seg = this.#queue.shift();
    if (!seg) return;
    this.#writing = seg;
    this.#write(seg.buf, this.#written);
  };

  readonly #written = (): void => {
    const seg = this.#writing;
    if (!seg) return;
    this.#writing = undefined;
    this.#queued -= seg.buf.length;
    const slab = seg.slab;
    // A retired slab with nothing left pending goes back for reuse.
    if (slab && --slab.refs === 0 && slab !== this.#slab) this.#keep(slab);
    seg.done?.();
    this.#flush();
    if (!this.#writing) for (const f of this.#whenDrained.splice(0)) f();
    this.#onWritten?.();
  };

  #keep(slab: Slab): void {
    if (slab.buf.length === SLAB_SIZE && this.#spare.length < SPARE_MAX) this.#spare.push(slab);
  }
}
