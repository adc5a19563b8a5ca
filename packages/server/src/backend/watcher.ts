/**
 * The watcher every backend returns: a cursor over the backend's event log. It reads pages of
 * events after its cursor and sleeps until the backend wakes it after a commit. Because it
 * reads the log by revision instead of receiving pushed events, a watcher that starts in the
 * past (`sinceRev`) replays and then follows live writes without gaps or duplicates, and a
 * slow consumer holds no more than one page in memory. If the log was compacted past the
 * cursor, iteration throws WARDEN_ERR_COMPACTED. Internal to `backend/`.
 */
import { checkPrefix, checkRev } from './rules';
import type { BackendEvent, Watcher, WatchOptions } from './types';

/** One page of the event log read after a revision. */
export interface EventPage {
  /** Events matching the prefix, in revision order. */
  events: BackendEvent[];
  /** The highest revision examined; the next read starts after it. */
  scannedThrough: number;
  /** The store's latest revision at the time of the read. */
  head: number;
}

export interface EventLog {
  /**
   * Events with revision in (afterRev, afterRev + maxScan] whose key starts with `prefix`.
   * Throws WARDEN_ERR_COMPACTED when afterRev is below the compacted revision and
   * WARDEN_ERR_CLOSED when the backend is closed.
   */
  readAfter(prefix: string, afterRev: number, maxScan: number): EventPage | Promise<EventPage>;
}

/** How many revisions one read examines. */
const SCAN_WINDOW = 1000;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

export class CursorWatcher implements Watcher {
  readonly #log: EventLog;
  readonly #prefix: string;
  readonly #onClose: (w: CursorWatcher) => void;
  #cursor: number;
  #buffer: BackendEvent[] = [];
  #closed = false;
  /** True when the log may hold events past the cursor. */
  #dirty = true;
  #waiter: (() => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(log: EventLog, prefix: string, sinceRev: number, onClose: (w: CursorWatcher) => void) {
    this.#log = log;
    this.#prefix = prefix;
    this.#cursor = sinceRev;
    this.#onClose = onClose;
  }

  /** Called by the backend after every commit. */
  wake(): void {
    this.#dirty = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = [];
    this.#onClose(this);
    this.wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<BackendEvent> {
    return {
      next: () => {
        // Serialize next() calls so events come out in order even if a caller does not await.
        const result = this.#queue.then(() => this.#next());
        this.#queue = result.catch(() => undefined);
        return result;
      },
      return: async () => {
        this.close();
        return DONE;
      },
    };
  }

  async #next(): Promise<IteratorResult<BackendEvent>> {
    for (;;) {
      if (this.#closed) return DONE;
      const event = this.#buffer.shift();
      if (event) return { done: false, value: event };
      if (!this.#dirty) {
        await new Promise<void>((resolve) => {
          this.#waiter = resolve;
        });
        continue;
      }
      this.#dirty = false;
      let page: EventPage;
      try {
        page = await this.#log.readAfter(this.#prefix, this.#cursor, SCAN_WINDOW);
      } catch (err) {
        this.close();
        throw err;
      }
      if (this.#closed) return DONE;
      this.#buffer.push(...page.events);
      this.#cursor = Math.max(this.#cursor, page.scannedThrough);
      if (this.#cursor < page.head) this.#dirty = true;
    }
  }
}

/**
 * The watchers of one backend: `open` is its `watch`, `wakeAll` follows every commit,
 * `closeAll` its `close` (a watcher opened after that is not kept: its iterator throws
 * WARDEN_ERR_CLOSED).
 */
export class Watchers {
  readonly #log: EventLog;
  readonly #live = new Set<CursorWatcher>();
  #closed = false;

  constructor(log: EventLog) {
    this.#log = log;
  }

  open(prefix: string, opts: WatchOptions): Watcher {
    checkPrefix(prefix);
    checkRev(opts?.sinceRev, 'sinceRev');
    const watcher = new CursorWatcher(this.#log, prefix, opts.sinceRev, (w) => this.#live.delete(w));
    if (!this.#closed) this.#live.add(watcher);
    return watcher;
  }

  wakeAll(): void {
    for (const w of this.#live) w.wake();
  }

  closeAll(): void {
    this.#closed = true;
    for (const w of [...this.#live]) w.close();
  }
}
