/**
 * The byte relay of a database session, for every engine: client → client tap → database and
 * database → server tap → client, with one teardown. A side that closes lets what is already
 * on its way to the other arrive first; a tap that cannot parse its stream ends the session;
 * a session terminated by Warden (a lock, expiry) stops passing the client's bytes on, runs
 * the engine's `terminate` (tell the client), after the pass of ends its `stopUpstream` (stop
 * the query, close the database's side), and then ends after a grace period.
 *
 * The taps are plain objects fed from 'data' events (no stream machinery per chunk: that was
 * a tenth of db_service's CPU per statement); what a tap emits for one chunk goes out in one
 * write, or in one corked batch when it is several pieces (a chunk's head, our own packet,
 * its tail). A destination that buffers more than its high-water mark pauses the source
 * until it drains, and so does the audit log's back-pressure (`hold`).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../log';
import { afterThisPass } from './end-with';
import type { DbSession } from './session';

/** How long a terminated session may take to deliver its last message before it is cut. */
export const TERMINATE_GRACE_MS = 1000;

/** Where a tap's output goes. */
export interface TapSink {
  write(chunk: Buffer): void;
  /** Nothing more will be written in this direction (an interrupt delivered its last message). */
  end(): void;
}

/** One direction's parser: fed every chunk in order; writes what goes on to its sink. */
export interface Tap {
  attach(sink: TapSink): void;
  /** Throws when the stream is malformed (the session ends). */
  push(chunk: Buffer): void;
}

/**
 * A tap's output plumbing: `out` writes through the sink attached by the relay.
 * Without a sink (unit tests feeding a tap directly) output is dropped.
 */
export abstract class TapBase implements Tap {
  #sink: TapSink | undefined;

  attach(sink: TapSink): void {
    this.#sink = sink;
  }

  protected out(chunk: Buffer): void {
    this.#sink?.write(chunk);
  }

  protected close(): void {
    this.#sink?.end();
  }

  abstract push(chunk: Buffer): void;
}

export interface RelayOptions {
  session: DbSession;
  logger: Logger;
  client: Duplex;
  upstream: Duplex;
  /** Parses what the client sends (audit, rewrites) on its way to the database. */
  clientTap: Tap;
  /** Parses what the database sends on its way to the client. */
  serverTap: Tap;
  /** Bytes already read from each side during the handshake. */
  clientRest: Buffer;
  upstreamRest: Buffer;
  /** Log messages for a malformed stream from each side. */
  malformed: { client: string; server: string };
  /**
   * Asked after each client chunk: a promise means the audit log is behind, and the client is
   * read again only once it resolves (back-pressure; no event is dropped).
   */
  hold?: () => Promise<void> | undefined;
  /** The engine's part of ending a session on Warden's decision: the message to the client. */
  terminate(reason: string): void;
  /**
   * … and of ending the database's side (cancel or kill a running statement, else close the
   * connection politely). Run after the pass of ends that terminated the session
   * (`afterThisPass`: every client a lock ends is told first), or when the session finishes
   * before that, and at most once.
   */
  stopUpstream?(): void;
  /**
   * Asked when the client's side ends and Warden did not terminate the session: true when the
   * engine keeps the database connection for another session (MySQL's pool). The relay then
   * neither ends nor destroys it; it stops listening to it and leaves it paused.
   */
  keepUpstream?(): boolean;
}

/**
 * One direction: `source` → `tap` → `dest`. Pieces a tap writes for one chunk are gathered and
 * written at the end of the chunk (corked when there are several).
 */
class Direction {
  readonly #source: Duplex;
  readonly #dest: Duplex;
  #pieces: Buffer[] = [];
  #pushing = false;
  /** Reasons the source is paused (a full destination, the audit hold). */
  #pauses = 0;
  #waitingDrain = false;
  ended = false;

  constructor(source: Duplex, dest: Duplex, onEnd: () => void) {
    this.#source = source;
    this.#dest = dest;
    this.sink = {
      write: (chunk) => {
        if (this.ended) return;
        if (this.#pushing) this.#pieces.push(chunk);
        else this.#write([chunk]);
      },
      end: () => {
        if (this.ended) return;
        this.ended = true;
        onEnd();
      },
    };
  }

  readonly sink: TapSink;

  /** Runs `feed` (a tap's push) and writes what it produced. */
  feed(push: () => void): void {
    this.#pushing = true;
    try {
      push();
    } finally {
      this.#pushing = false;
      const pieces = this.#pieces;
      if (pieces.length > 0) {
        this.#pieces = [];
        this.#write(pieces);
      }
    }
  }

  #write(pieces: Buffer[]): void {
    const dest = this.#dest;
    if (dest.destroyed) return;
    let ok: boolean;
    if (pieces.length === 1) ok = dest.write(pieces[0]!);
    else {
      dest.cork();
      ok = true;
      for (const p of pieces) ok = dest.write(p);
      dest.uncork();
    }
    if (!ok && !this.#waitingDrain) {
      this.#waitingDrain = true;
      this.pause();
      dest.once('drain', () => {
        this.#waitingDrain = false;
        this.resume();
      });
    }
  }

  get paused(): boolean {
    return this.#pauses > 0;
  }

  pause(): void {
    if (this.#pauses++ === 0) this.#source.pause();
  }

  resume(): void {
    if (--this.#pauses === 0) this.#source.resume();
  }
}

/** Relays until either side is gone; resolves once both sockets are destroyed. */
export function relay(o: RelayOptions): Promise<void> {
  const { client, upstream, clientTap, serverTap, session, logger } = o;
  return new Promise<void>((resolve) => {
    let finished = false;
    /** Terminated by Warden: the client's bytes go nowhere any more. */
    let stopped = false;
    /** The database's side of a termination, until it has run. */
    let stopUpstream: (() => void) | undefined;
    const runStopUpstream = () => {
      const stop = stopUpstream;
      stopUpstream = undefined;
      try {
        stop?.();
      } catch (e) {
        logger.debug({ err: e, session: session.id }, 'ending the database side failed');
      }
    };
    const keep = () => !stopped && o.keepUpstream?.() === true;
    const finish = () => {
      if (finished) return;
      runStopUpstream();
      finished = true;
      client.destroy();
      if (keep()) {
        upstream.pause();
        upstream.off('data', fromUpstream);
        upstream.off('end', upstreamDone);
        upstream.off('close', upstreamDone);
      } else upstream.destroy();
      resolve();
    };
    const up = new Direction(client, upstream, () => (keep() ? finish() : upstream.end()));
    const down = new Direction(upstream, client, () => client.end());
    clientTap.attach(up.sink);
    serverTap.attach(down.sink);

    const fromClient = (chunk: Buffer) => {
      if (stopped || finished) return;
      try {
        up.feed(() => clientTap.push(chunk));
      } catch (e) {
        logger.info({ err: e, session: session.id }, o.malformed.client);
        finish();
        return;
      }
      const wait = o.hold?.();
      if (wait) {
        up.pause();
        wait.then(
          () => up.resume(),
          () => up.resume(),
        );
      }
    };
    const fromUpstream = (chunk: Buffer) => {
      if (down.ended || finished) return;
      try {
        down.feed(() => serverTap.push(chunk));
      } catch (e) {
        logger.info({ err: e, session: session.id }, o.malformed.server);
        finish();
      }
    };

    session.onTerminate((reason) => {
      stopped = true;
      o.terminate(reason);
      if (o.stopUpstream) {
        stopUpstream = o.stopUpstream;
        afterThisPass(runStopUpstream);
      }
      setTimeout(finish, TERMINATE_GRACE_MS).unref();
    });
    // The database is gone: what it sent is on its way; then the client's side closes.
    const upstreamDone = () => down.sink.end();
    upstream.on('end', upstreamDone);
    upstream.on('close', upstreamDone);
    client.on('end', () => up.sink.end());
    client.on('close', finish);
    client.on('finish', finish);
    client.on('error', finish);

    if (o.clientRest.length) fromClient(o.clientRest);
    if (o.upstreamRest.length) fromUpstream(o.upstreamRest);
    client.on('data', fromClient);
    upstream.on('data', fromUpstream);
    if (!finished) {
      if (!up.paused) client.resume();
      if (!down.paused) upstream.resume();
    }
  });
}
