/**
 * Whether the database may be working for the client of a MySQL session: each command the
 * client sent expects an answer of a known shape (an OK/ERR, a result set, a prepare's
 * definitions, nothing at all), and the session is idle once every answer has ended. Used
 * when Warden ends a session (a lock): an idle one is simply closed (COM_QUIT), a busy one
 * needs `KILL CONNECTION` on a new connection, because closing the socket does not stop a
 * running statement. Anything this does not follow (a cursor, replication commands, an
 * answer it cannot read) counts as busy for the rest of the session: the fallback is the
 * KILL, never a statement left running.
 * Internal to `srv/db/mysql`; tested by `activity.test.ts`.
 */
import { Cap } from './protocol';

/** Status flag: another result set follows this one. */
const MORE_RESULTS_EXISTS = 0x0008;
/** Status flag (EOF after the column definitions): the rows are fetched through a cursor. */
const CURSOR_EXISTS = 0x0040;

/** How many payload bytes of each packet `server` needs (an OK packet's status flags). */
export const ACTIVITY_HEAD = 24;

type Expect = 'result' | 'rows' | 'prepare' | 'fieldlist' | 'one';
type State = 'idle' | 'first' | 'columns' | 'coleof' | 'rows' | 'count' | 'fieldlist' | 'one';

/** Answers by command byte; commands not listed here lose track (busy from then on). */
const ANSWERS: Record<number, Expect | 'none'> = {
  1: 'none', // COM_QUIT
  2: 'one', // COM_INIT_DB
  3: 'result', // COM_QUERY
  4: 'fieldlist', // COM_FIELD_LIST
  5: 'one', // COM_CREATE_DB
  6: 'one', // COM_DROP_DB
  7: 'one', // COM_REFRESH
  9: 'one', // COM_STATISTICS (one string packet)
  10: 'result', // COM_PROCESS_INFO
  12: 'one', // COM_PROCESS_KILL
  13: 'one', // COM_DEBUG
  14: 'one', // COM_PING
  22: 'prepare', // COM_STMT_PREPARE
  23: 'result', // COM_STMT_EXECUTE (without a cursor, see `command`)
  24: 'none', // COM_STMT_SEND_LONG_DATA
  25: 'none', // COM_STMT_CLOSE
  26: 'one', // COM_STMT_RESET
  27: 'one', // COM_SET_OPTION
  28: 'rows', // COM_STMT_FETCH
  31: 'one', // COM_RESET_CONNECTION
};

/** A length-encoded integer at the start of `b`, or undefined when it cannot be one. */
function lenenc(b: Buffer, at: number): { value: number; next: number } | undefined {
  const f = b[at];
  if (f === undefined) return undefined;
  if (f < 0xfb) return { value: f, next: at + 1 };
  if (f === 0xfc && b.length >= at + 3) return { value: b.readUInt16LE(at + 1), next: at + 3 };
  if (f === 0xfd && b.length >= at + 4) return { value: b.readUIntLE(at + 1, 3), next: at + 4 };
  if (f === 0xfe && b.length >= at + 9) return { value: Number(b.readBigUInt64LE(at + 1)), next: at + 9 };
  return undefined;
}

export class MySqlActivity {
  readonly #deprecateEof: boolean;
  /** Answers the client's commands still expect, not yet begun, oldest first. */
  #awaited: Expect[] = [];
  #state: State = 'idle';
  /** Packets left in the current part (column definitions, a prepare's definitions). */
  #left = 0;
  #lost = false;

  /** `capabilities`: what the session negotiated with the database (CLIENT_DEPRECATE_EOF). */
  constructor(capabilities: number) {
    this.#deprecateEof = (capabilities & Cap.DEPRECATE_EOF) !== 0;
  }

  /** True when no command is waiting for (the rest of) its answer. */
  get idle(): boolean {
    return !this.#lost && this.#state === 'idle' && this.#awaited.length === 0;
  }

  /** A command the client sent on to the database (`payload` of its first packet). */
  command(payload: Buffer): void {
    const answer = ANSWERS[payload[0] ?? -1];
    // COM_STMT_EXECUTE with a cursor: the rows come later through COM_STMT_FETCH.
    const cursor = payload[0] === 0x17 && (payload.length < 6 || payload[5] !== 0);
    if (answer === undefined || cursor) this.#lost = true;
    else if (answer !== 'none') this.#awaited.push(answer);
  }

  /**
   * True when a database packet starting with `first`, `length` bytes long, is a row of the
   * result set being read: nothing to follow, and `server` need not be called for it (the
   * server tap then keeps none of its bytes: a large result is mostly rows).
   */
  row(first: number, length: number): boolean {
    return !this.#lost && this.#state === 'rows' && first !== 0xff && !this.#terminal(first, length);
  }

  /**
   * A packet from the database: the first bytes of its payload (at least `ACTIVITY_HEAD` when
   * it has them) and its payload length. Continuations of a 16 MB packet are not passed.
   */
  server(head: Buffer, length: number): void {
    if (this.#lost) return;
    if (this.#state === 'idle') {
      const next = this.#awaited.shift();
      // The database spoke without being asked: not something this follows.
      if (next === undefined) {
        this.#lost = true;
        return;
      }
      this.#state = next === 'result' ? 'first' : next === 'prepare' ? 'count' : next;
      this.#left = next === 'prepare' ? -1 : 0;
    }
    const first = head[0];
    if (first === undefined) {
      this.#lost = true;
      return;
    }
    switch (this.#state) {
      case 'one':
        this.#done();
        return;
      case 'first':
        if (first === 0xff) this.#done();
        else if (first === 0x00) this.#endOfResult(this.#okStatus(head));
        else if (first === 0xfb) {
          // LOCAL INFILE: the client sends the file, then the OK or ERR comes.
        } else {
          const n = lenenc(head, 0);
          if (!n || n.value === 0) this.#lost = true;
          else {
            this.#left = n.value;
            this.#state = 'columns';
          }
        }
        return;
      case 'columns':
        if (--this.#left === 0) this.#state = this.#deprecateEof ? 'rows' : 'coleof';
        return;
      case 'coleof': {
        if (first === 0xff) {
          this.#done();
          return;
        }
        const status = first === 0xfe && head.length >= 5 ? head.readUInt16LE(3) : undefined;
        if (status === undefined) this.#lost = true;
        else if (status & CURSOR_EXISTS) this.#done();
        else this.#state = 'rows';
        return;
      }
      case 'rows':
        if (first === 0xff) this.#done();
        else if (this.#terminal(first, length)) {
          this.#endOfResult(
            this.#deprecateEof ? this.#okStatus(head) : head.length >= 5 ? head.readUInt16LE(3) : undefined,
          );
        }
        return;
      case 'count':
        if (this.#left === -1) {
          // COM_STMT_PREPARE_OK: [0][id:4][columns:2][params:2]…, then their definitions.
          if (first === 0xff) this.#done();
          else if (first !== 0x00 || head.length < 9) this.#lost = true;
          else {
            const columns = head.readUInt16LE(5);
            const params = head.readUInt16LE(7);
            const eof = this.#deprecateEof ? 0 : 1;
            this.#left = params + (params > 0 ? eof : 0) + columns + (columns > 0 ? eof : 0);
            if (this.#left === 0) this.#done();
          }
        } else if (--this.#left === 0) this.#done();
        return;
      case 'fieldlist':
        if (first === 0xff || this.#terminal(first, length)) this.#done();
        return;
      default:
        this.#lost = true;
    }
  }

  /** An EOF packet, or the OK that replaces it under CLIENT_DEPRECATE_EOF (not a row). */
  #terminal(first: number, length: number): boolean {
    return first === 0xfe && (this.#deprecateEof ? length < 0xffffff : length < 9);
  }

  /** The status flags of an OK packet (0x00 or 0xfe header). */
  #okStatus(head: Buffer): number | undefined {
    const affected = lenenc(head, 1);
    const insertId = affected && lenenc(head, affected.next);
    if (!insertId || head.length < insertId.next + 2) return undefined;
    return head.readUInt16LE(insertId.next);
  }

  #endOfResult(status: number | undefined): void {
    if (status === undefined) this.#lost = true;
    else if (status & MORE_RESULTS_EXISTS) this.#state = 'first';
    else this.#done();
  }

  #done(): void {
    this.#state = 'idle';
    this.#left = 0;
  }
}
