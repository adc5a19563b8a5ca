/**
 * The two directions of an established MySQL session:
 *
 *   - `ClientTap` (client → database) cuts the client's bytes into packets and hands each
 *     command (the packet with sequence id 0 that starts it) to a callback, which may let it
 *     through, rewrite it, or drop it and answer the client itself (COM_CHANGE_USER would
 *     change the database user behind the access check's back). A packet is held only until
 *     it is complete; commands longer than one packet (16 MB) flow on as they come.
 *   - `ServerTap` (database → client) passes bytes on as they come (large results stream)
 *     and only tracks packet boundaries and sequence ids, so that `inject` and `interrupt`
 *     can put our own packet between two of the database's, numbered as the client expects,
 *     and so that the answer to a COM_STMT_PREPARE tells which statement id it created.
 *
 * Both taps share a `SeqState`: the sequence id of the last packet either side sent, which
 * is what our own packet's id follows. A malformed length fails the stream (the session
 * ends). Internal to `srv/db/mysql`; tested by `relay.test.ts`.
 */
import { TapBase } from '../common/relay';
import { ACTIVITY_HEAD, type MySqlActivity } from './activity';
import { MAX_PACKET_PAYLOAD, MySqlProtocolError } from './protocol';

/** The sequence id of the last packet seen in either direction. */
export interface SeqState {
  seq: number;
  from: 'client' | 'server';
}

/** What to do with a client command. */
export type CommandAction =
  | { kind: 'forward' }
  | { kind: 'rewrite'; payload: Buffer }
  /** Drop the command and send `packet` (a whole packet, sequence id included) to the client. */
  | { kind: 'reply'; packet: Buffer }
  /**
   * The client ends the session (COM_QUIT kept from the database, whose connection goes back
   * to the pool): the command is not sent on, nor is anything after it (`ClientTap.trailing`).
   */
  | { kind: 'end' };

export interface ClientTapHandler {
  /** A command that fits in one packet (`payload` without the header). */
  command(payload: Buffer): CommandAction;
  /** Whether a command longer than one packet may start; if not, the stream fails. */
  allowLong(command: number): boolean;
  /** A command longer than one packet, once it is complete (forwarded as it came). */
  longCommand(command: number, length: number): void;
  /** Where `reply` packets go (the server tap's `inject`). */
  reply(packet: Buffer): void;
}

/**
 * @example
 *   relay({ clientTap: new ClientTap(handler, seq), … });
 */
export class ClientTap extends TapBase {
  readonly #handler: ClientTapHandler;
  readonly #seq: SeqState;
  /** Bytes of the packet being read (header first). */
  #parts: Buffer[] = [];
  #have = 0;
  /** In a command longer than one packet: its command byte and length so far. */
  #long: { command: number; length: number } | undefined;
  readonly #activity: MySqlActivity | undefined;
  /** A command answered `end`: nothing more is read. */
  #ended = false;
  #trailing = false;

  /** `activity` learns of every command sent on. */
  constructor(handler: ClientTapHandler, seq: SeqState, activity?: MySqlActivity) {
    super();
    this.#handler = handler;
    this.#seq = seq;
    this.#activity = activity;
  }

  /** A command was answered `end` (COM_QUIT). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes came after the `end` command, or a packet was left incomplete before it. */
  get trailing(): boolean {
    return this.#trailing || (this.#ended && this.#have > 0);
  }

  push(chunk: Buffer): void {
    if (this.#ended) {
      if (chunk.length > 0) this.#trailing = true;
      return;
    }
    this.#parts.push(chunk);
    this.#have += chunk.length;
    for (;;) {
      if (this.#ended || this.#have < 4) break;
      const head = this.#peek(4);
      const length = head.readUIntLE(0, 3);
      if (this.#have < 4 + length) break;
      const whole = this.#take(4 + length);
      this.#packet(whole, head[3]!, length);
    }
  }

  #packet(whole: Buffer, seq: number, length: number): void {
    this.#seq.seq = seq;
    this.#seq.from = 'client';
    const payload = whole.subarray(4);
    if (this.#long) {
      this.#long.length += length;
      if (length < MAX_PACKET_PAYLOAD) {
        this.#handler.longCommand(this.#long.command, this.#long.length);
        this.#long = undefined;
      }
      this.out(whole);
      return;
    }
    if (seq !== 0 || length === 0) {
      // Not a command: a reply in a conversation the database started (auth data…).
      this.out(whole);
      return;
    }
    if (length === MAX_PACKET_PAYLOAD) {
      if (!this.#handler.allowLong(payload[0]!))
        throw new MySqlProtocolError(`command 0x${payload[0]!.toString(16)} longer than one packet`);
      this.#long = { command: payload[0]!, length };
      this.#activity?.command(payload);
      this.out(whole);
      return;
    }
    const action = this.#handler.command(payload);
    if (action.kind === 'forward') {
      this.#activity?.command(payload);
      this.out(whole);
    } else if (action.kind === 'rewrite') {
      this.#activity?.command(action.payload);
      const head = Buffer.alloc(4);
      head.writeUIntLE(action.payload.length, 0, 3);
      this.out(Buffer.concat([head, action.payload]));
    } else if (action.kind === 'end') this.#ended = true;
    else this.#handler.reply(action.packet);
  }

  /** The first `n` buffered bytes, without consuming them. */
  #peek(n: number): Buffer {
    const first = this.#parts[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.#parts);
    this.#parts = [joined];
    return joined.subarray(0, n);
  }

  /** Consumes the first `n` buffered bytes (joined once, when the packet is complete). */
  #take(n: number): Buffer {
    const first = this.#parts[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.#parts);
      out = joined.subarray(0, n);
      this.#parts = joined.length > n ? [joined.subarray(n)] : [];
    }
    this.#have -= n;
    return out;
  }
}

/** How many payload bytes of each server packet we keep (COM_STMT_PREPARE_OK is 12). */
const PEEK = 12;
/** Payload bytes kept of each packet: what the prepare callbacks and the activity read. */
const HEAD = Math.max(PEEK, ACTIVITY_HEAD);

/**
 * @example
 *   const tap = new ServerTap(seq);
 *   relay({ serverTap: tap, … });
 *   tap.interrupt((seq) => errPacket(seq, { code: 1927, sqlState: '70100', message: reason }));
 */
export class ServerTap extends TapBase {
  readonly #seq: SeqState;
  #head = Buffer.alloc(0);
  /** Payload bytes left in the current packet; undefined between packets. */
  #left: number | undefined;
  #length = 0;
  #packetSeq = 0;
  /** The current packet's first payload bytes (copied: the chunk goes on to the client). */
  readonly #peek = Buffer.alloc(HEAD);
  #peeked = 0;
  /** The current packet is a row (`MySqlActivity.row`): none of its bytes are kept. */
  #row = false;
  readonly #activity: MySqlActivity | undefined;
  /** The last packet's payload was 16 MB: the next one continues it. */
  #continues = false;
  #pendingInterrupt: ((seq: number) => Buffer) | undefined;
  #pendingInject: Buffer[] = [];
  #done = false;
  /** Statements whose prepare answer is awaited, oldest first. */
  readonly #prepares: ((first: Buffer) => void)[] = [];

  /** `activity` learns of every packet the database sends. */
  constructor(seq: SeqState, activity?: MySqlActivity) {
    super();
    this.#seq = seq;
    this.#activity = activity;
  }

  get atBoundary(): boolean {
    return this.#left === undefined && this.#head.length === 0 && !this.#continues;
  }

  get interrupted(): boolean {
    return this.#done;
  }

  /**
   * The next answer (its first packet, up to 12 payload bytes) goes to `onAnswer`: called by
   * the client side when it forwards a COM_STMT_PREPARE.
   */
  expectAnswer(onAnswer: (first: Buffer) => void): void {
    this.#prepares.push(onAnswer);
  }

  /** Sends `packet` to the client at the next packet boundary (at once when idle). */
  inject(packet: Buffer): void {
    if (this.#done) return;
    if (this.atBoundary) this.out(packet);
    else this.#pendingInject.push(packet);
  }

  /**
   * Ends the stream with the packet `last(seq)` makes, numbered after the last packet either
   * side sent, at the next packet boundary (at once when idle).
   */
  interrupt(last: (seq: number) => Buffer): void {
    if (this.#done || this.#pendingInterrupt) return;
    if (this.atBoundary) this.#finish(last);
    else this.#pendingInterrupt = last;
  }

  #finish(last: (seq: number) => Buffer): void {
    this.#done = true;
    this.out(last((this.#seq.seq + 1) & 0xff));
    this.close();
  }

  push(chunk: Buffer): void {
    if (this.#done) return;
    let from = 0;
    let at = 0;
    while (at < chunk.length) {
      if (this.#left === undefined) {
        if (this.#head.length === 0 && chunk.length - at >= 4) {
          // The usual case: the whole header in this chunk.
          this.#length = chunk.readUIntLE(at, 3);
          this.#packetSeq = chunk[at + 3]!;
          at += 4;
        } else {
          const take = Math.min(4 - this.#head.length, chunk.length - at);
          this.#head = Buffer.concat([this.#head, chunk.subarray(at, at + take)]);
          at += take;
          if (this.#head.length < 4) break;
          this.#length = this.#head.readUIntLE(0, 3);
          this.#packetSeq = this.#head[3]!;
          this.#head = Buffer.alloc(0);
        }
        this.#left = this.#length;
        this.#peeked = 0;
        // A row (the bulk of a large result) is told by its first byte: no copy of its head.
        this.#row =
          !this.#continues &&
          at < chunk.length &&
          this.#length > 0 &&
          !(this.#packetSeq === 1 && this.#prepares.length > 0) &&
          this.#activity?.row(chunk[at]!, this.#length) === true;
      } else {
        const take = Math.min(this.#left, chunk.length - at);
        if (!this.#row && this.#peeked < HEAD && take > 0)
          this.#peeked += chunk.copy(this.#peek, this.#peeked, at, at + Math.min(take, HEAD - this.#peeked));
        this.#left -= take;
        at += take;
      }
      if (this.#left === 0) this.#endPacket();
      if (this.atBoundary && (this.#pendingInject.length > 0 || this.#pendingInterrupt)) {
        if (at > from) this.out(chunk.subarray(from, at));
        from = at;
        for (const p of this.#pendingInject.splice(0)) this.out(p);
        if (this.#pendingInterrupt) {
          this.#finish(this.#pendingInterrupt);
          return;
        }
      }
    }
    if (at > from) this.out(from === 0 && at === chunk.length ? chunk : chunk.subarray(from, at));
  }

  #endPacket(): void {
    this.#left = undefined;
    const wasContinued = this.#continues;
    this.#continues = this.#length === MAX_PACKET_PAYLOAD;
    this.#seq.seq = this.#packetSeq;
    this.#seq.from = 'server';
    if (wasContinued || this.#row) return;
    const head = this.#peek.subarray(0, this.#peeked);
    // The first packet of an answer has sequence id 1 (the command was 0).
    if (this.#packetSeq === 1 && this.#prepares.length > 0) {
      const onAnswer = this.#prepares.shift()!;
      onAnswer(Buffer.from(head.subarray(0, PEEK)));
    }
    this.#activity?.server(head, this.#length);
  }
}
