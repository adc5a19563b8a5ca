/**
 * The two directions of an established PostgreSQL session, as pass-through streams that
 * never hold data back (large results stream as they come):
 *
 *   - `ClientTap` (client → database) frames the client's messages and hands the ones we
 *     audit (Query, Parse, Bind, Execute) to a callback once complete; bytes flow on at once.
 *   - `ServerTap` (database → client) only tracks message boundaries, so that `interrupt()`
 *     can end the stream with our own ErrorResponse between two messages (locks), never in
 *     the middle of one.
 *
 * A malformed length fails the stream (the session ends). Internal to `srv/db/postgres`;
 * tested by `relay.test.ts`.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { messageLength } from './protocol';

/** PostgreSQL's own ceiling for a message (1 GB). */
export const MAX_MESSAGE_LENGTH = 0x3fffffff;
/** Audited messages longer than this are recorded as a note, not in full. */
export const MAX_AUDITED_MESSAGE = 16 * 1024 * 1024;

const EMPTY = Buffer.alloc(0);
/** One-character strings for every type byte, made once. */
const MESSAGE_TYPES = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));

/** Walks typed messages across chunk boundaries. */
class FrameScanner {
  #head = EMPTY;
  #left: number | undefined;

  constructor(
    private readonly events: {
      header?(type: string, length: number): void;
      body?(slice: Buffer): void;
      end?(): void;
    } = {},
  ) {}

  get atBoundary(): boolean {
    return this.#left === undefined && this.#head.length === 0;
  }

  /**
   * Consumes `chunk` from `from`; with `stopAtBoundary`, returns as soon as a message ends
   * (or at once when already between messages). Returns the offset reached.
   */
  scan(chunk: Buffer, from = 0, stopAtBoundary = false): number {
    let at = from;
    if (stopAtBoundary && this.atBoundary) return at;
    while (at < chunk.length) {
      if (this.#left === undefined) {
        let head: Buffer;
        if (this.#head.length === 0 && chunk.length - at >= 5) {
          // The usual case: the whole header in this chunk (no copy).
          head = chunk.subarray(at, at + 5);
          at += 5;
        } else {
          const take = Math.min(5 - this.#head.length, chunk.length - at);
          this.#head = Buffer.concat([this.#head, chunk.subarray(at, at + take)]);
          at += take;
          if (this.#head.length < 5) break;
          head = this.#head;
          this.#head = EMPTY;
        }
        const type = MESSAGE_TYPES[head[0]!]!;
        const len = messageLength(head, MAX_MESSAGE_LENGTH);
        this.#left = len;
        this.events.header?.(type, len);
      } else {
        const take = Math.min(this.#left, chunk.length - at);
        if (take > 0) this.events.body?.(chunk.subarray(at, at + take));
        this.#left -= take;
        at += take;
      }
      if (this.#left === 0) {
        this.#left = undefined;
        this.events.end?.();
        if (stopAtBoundary) return at;
      }
    }
    return at;
  }
}

const AUDITED = new Set(['Q', 'P', 'B', 'E']);
/** Extended-protocol messages that start or continue work before a Sync. */
const EXTENDED = new Set(['P', 'B', 'E', 'D', 'C', 'H']);

/**
 * Whether the database may be working for the client: every Query, Sync and FunctionCall
 * the client sent is answered by exactly one ReadyForQuery, and Parse/Bind/Execute… sent
 * without their Sync yet may already run. Idle means there is nothing to cancel: closing
 * the connection ends the backend.
 */
export class PgActivity {
  /** Query/Sync/FunctionCall messages not yet answered by ReadyForQuery. */
  #outstanding = 0;
  /** Extended-protocol messages sent since the last Sync. */
  #extended = false;

  client(type: string): void {
    if (type === 'Q' || type === 'S' || type === 'F') {
      this.#outstanding++;
      if (type === 'S') this.#extended = false;
    } else if (EXTENDED.has(type)) this.#extended = true;
  }

  server(type: string): void {
    if (type === 'Z' && this.#outstanding > 0) this.#outstanding--;
  }

  get idle(): boolean {
    return this.#outstanding === 0 && !this.#extended;
  }
}

/**
 * @example
 *   client.pipe(new ClientTap((type, body) => audit(type, body))).pipe(upstream);
 */
export class ClientTap extends Transform {
  readonly #scanner: FrameScanner;
  readonly #hold: (() => Promise<void> | undefined) | undefined;
  #stopped = false;

  /**
   * `onMessage(type, body)` for Query, Parse, Bind and Execute; `body` undefined when too long
   * to keep. `hold()`, asked after each chunk, may return a promise: the next chunk is read
   * only once it resolves (back-pressure from the audit log). `activity` learns of every
   * message sent on.
   */
  constructor(
    onMessage: (type: string, body: Buffer | undefined, length: number) => void,
    hold?: () => Promise<void> | undefined,
    activity?: PgActivity,
  ) {
    super();
    this.#hold = hold;
    let type = '';
    let length = 0;
    let parts: Buffer[] | undefined;
    this.#scanner = new FrameScanner({
      header: (t, len) => {
        activity?.client(t);
        type = t;
        length = len;
        parts = AUDITED.has(t) ? [] : undefined;
      },
      body: (slice) => {
        // Copy: the chunk's memory goes on to the socket. Bodies above the cap are not kept.
        if (parts && length <= MAX_AUDITED_MESSAGE) parts.push(Buffer.from(slice));
      },
      end: () => {
        if (parts) onMessage(type, length <= MAX_AUDITED_MESSAGE ? Buffer.concat(parts) : undefined, length);
        parts = undefined;
      },
    });
  }

  /**
   * Sends nothing more to the database (a terminated session: what the client sends after the
   * decision must not start work that nobody would cancel).
   */
  stop(): void {
    this.#stopped = true;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.#stopped) {
      done();
      return;
    }
    try {
      this.#scanner.scan(chunk);
    } catch (e) {
      done(e as Error);
      return;
    }
    const wait = this.#hold?.();
    if (!wait) {
      done(null, chunk);
      return;
    }
    this.push(chunk);
    wait.then(() => done(), done);
  }
}

/**
 * @example
 *   const tap = new ServerTap();
 *   upstream.pipe(tap).pipe(client);
 *   tap.interrupt(errorResponse({ severity: 'FATAL', code: '57P01', message: reason }));
 */
export class ServerTap extends Transform {
  readonly #scanner: FrameScanner;
  #pending: Buffer | undefined;
  #done = false;

  /** `activity` learns of every message the database sends. */
  constructor(activity?: PgActivity) {
    super();
    this.#scanner = new FrameScanner(activity ? { header: (type) => activity.server(type) } : {});
  }

  /** Ends the stream with `last` at the next message boundary (at once when idle). */
  interrupt(last: Buffer): void {
    if (this.#done || this.#pending) return;
    if (this.#scanner.atBoundary) {
      this.#finish(last);
      return;
    }
    this.#pending = last;
  }

  get interrupted(): boolean {
    return this.#done;
  }

  #finish(last: Buffer): void {
    this.#done = true;
    this.push(last);
    this.push(null);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.#done) {
      done();
      return;
    }
    try {
      if (!this.#pending) {
        this.#scanner.scan(chunk);
        done(null, chunk);
        return;
      }
      const upTo = this.#scanner.scan(chunk, 0, true);
      if (this.#scanner.atBoundary) {
        if (upTo > 0) this.push(chunk.subarray(0, upTo));
        this.#finish(this.#pending);
      } else {
        this.push(chunk);
      }
      done();
    } catch (e) {
      done(e as Error);
    }
  }
}
