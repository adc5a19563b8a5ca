/**
 * Reading exact byte counts from a stream during a protocol's handshake (PostgreSQL startup,
 * MySQL greeting), before the connection settles into relaying. `read(n)` resolves with n
 * bytes or rejects when the stream ends, errors, or a limit is exceeded; `release()` hands
 * back whatever was read ahead and stops listening, so the caller can pipe the stream.
 * Internal to `srv/db`; tested by `stream-reader.test.ts`.
 */
import type { Readable } from 'node:stream';
import { WardenError } from '@warden/api';

export class StreamReader {
  readonly #stream: Readable;
  #buffered: Buffer = Buffer.alloc(0);
  #want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  #ended: Error | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    this.#serve();
  };
  readonly #onEnd = () => this.#fail(new WardenError('WARDEN_ERR_CONNECTION', 'the connection was closed'));
  readonly #onError = (e: Error) => this.#fail(new WardenError('WARDEN_ERR_CONNECTION', e.message));

  constructor(stream: Readable) {
    this.#stream = stream;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
  }

  /** Resolves with exactly `n` bytes. One read at a time. */
  read(n: number): Promise<Buffer> {
    if (this.#want) return Promise.reject(new Error('internal: concurrent StreamReader.read'));
    return new Promise((resolve, reject) => {
      this.#want = { n, resolve, reject };
      this.#serve();
    });
  }

  #serve(): void {
    const want = this.#want;
    if (!want) {
      // Nobody is reading: stop the flow so a flood cannot grow the buffer without bound.
      if (this.#buffered.length > 0) this.#stream.pause();
      return;
    }
    if (this.#buffered.length >= want.n) {
      const out = this.#buffered.subarray(0, want.n);
      this.#buffered = this.#buffered.subarray(want.n);
      this.#want = undefined;
      want.resolve(out);
      return;
    }
    if (this.#ended) {
      this.#want = undefined;
      want.reject(this.#ended);
      return;
    }
    this.#stream.resume();
  }

  #fail(e: Error): void {
    this.#ended ??= e;
    this.#serve();
  }

  /** Stops reading; returns the bytes read ahead (the stream is left paused). */
  release(): Buffer {
    this.#stream.off('data', this.#onData);
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('close', this.#onEnd);
    this.#stream.off('error', this.#onError);
    this.#stream.pause();
    const rest = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    const want = this.#want;
    this.#want = undefined;
    want?.reject(new WardenError('WARDEN_ERR_CLOSED', 'the reader was released'));
    return rest;
  }
}
