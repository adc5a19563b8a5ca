/**
 * The two directions of an established PostgreSQL session, as pass-through taps (fed by the
 * relay, `common/relay.ts`) that never hold data back (large results stream as they come):
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
import { TapBase } from '../common/relay';
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
        let type: string;
        let len: number;
        if (this.#head.length === 0 && chunk.length - at >= 5) {
          // The usual case: the whole header in this chunk (read in place: no copy, no view).
          type = MESSAGE_TYPES[chunk[at]!]!;
          len = messageLength(chunk, MAX_MESSAGE_LENGTH, at);
          at += 5;
        } else {
          const take = Math.min(5 - this.#head.length, chunk.length - at);
          this.#head = Buffer.concat([this.#head, chunk.subarray(at, at + take)]);
          at += take;
          if (this.#head.length < 5) break;
          type = MESSAGE_TYPES[this.#head[0]!]!;
          len = messageLength(this.#head, MAX_MESSAGE_LENGTH);
          this.#head = EMPTY;
        }
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
 *   relay({ clientTap: new ClientTap((type, body) => audit(type, body)), … });
 */
export class ClientTap extends TapBase {
  readonly #scanner: FrameScanner;

  /**
   * `onMessage(type, body)` for Query, Parse, Bind and Execute; `body` undefined when too long
   * to keep. `activity` learns of every message sent on.
   */
  constructor(
    onMessage: (type: string, body: Buffer | undefined, length: number) => void,
    activity?: PgActivity,
  ) {
    super();
    let type = '';
    let length = 0;
    let audited = false;
    /** The body's first slice, and the rest when it spans chunks (rare). */
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    this.#scanner = new FrameScanner({
      header: (t, len) => {
        activity?.client(t);
        type = t;
        length = len;
        audited = AUDITED.has(t);
      },
      body: (slice) => {
        // No copy: chunks are never written to after they are read, and `onMessage` reads the
        // body before it returns. Bodies above the cap are not kept.
        if (!audited || length > MAX_AUDITED_MESSAGE) return;
        if (first === undefined) first = slice;
        else if (more) more.push(slice);
        else more = [slice];
      },
      end: () => {
        if (audited) {
          const body =
            length > MAX_AUDITED_MESSAGE
              ? undefined
              : more
                ? Buffer.concat([first!, ...more])
                : (first ?? EMPTY);
          onMessage(type, body, length);
        }
        audited = false;
        first = undefined;
        more = undefined;
      },
    });
  }

  /** Passes `chunk` on whole, after reading its messages (a malformed length throws first). */
  push(chunk: Buffer): void {
    this.#scanner.scan(chunk);
    this.out(chunk);
  }
}

/**
 * @example
 *   const tap = new ServerTap();
 *   relay({ serverTap: tap, … });
 *   tap.interrupt(errorResponse({ severity: 'FATAL', code: '57P01', message: reason }));
 */
export class ServerTap extends TapBase {
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
    this.out(last);
    this.close();
  }

  push(chunk: Buffer): void {
    if (this.#done) return;
    if (!this.#pending) {
      this.#scanner.scan(chunk);
      this.out(chunk);
      return;
    }
    const upTo = this.#scanner.scan(chunk, 0, true);
    if (this.#scanner.atBoundary) {
      if (upTo > 0) this.out(chunk.subarray(0, upTo));
      this.#finish(this.#pending);
    } else {
      this.out(chunk);
    }
  }
}
