/**
 * Ending a client stream with a last message (a protocol error), refusing a client after its
 * opening (`refuseAtOpening`), and ending the database's side of a terminated session after the
 * pass that told every client (`afterThisPass`), for every engine.
 */
import type { Duplex } from 'node:stream';
import { StreamReader } from './stream-reader';

/** Writes `data` and closes, waiting (briefly) for it to be flushed. */
export function endWith(stream: Duplex, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) {
      resolve();
      return;
    }
    const timer = setTimeout(done, 2000);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    stream.once('close', done);
    stream.once('error', done);
    stream.end(data, done);
  });
}

/**
 * An engine's `refuse`: reads the client's opening (PostgreSQL startup, MySQL handshake
 * response) with `readOpening`, then ends the stream with `answer(opening)` — the protocol's
 * error carrying the reason — when there is one. The stream is destroyed afterwards in every
 * case, and after `timeoutMs` if the client is still silent; a malformed opening just closes it.
 */
export async function refuseAtOpening<T>(
  stream: Duplex,
  timeoutMs: number,
  readOpening: (reader: StreamReader) => Promise<T>,
  answer: (opening: T) => Buffer | undefined,
): Promise<void> {
  const reader = new StreamReader(stream);
  const timer = setTimeout(() => stream.destroy(), timeoutMs);
  try {
    const opening = await readOpening(reader);
    reader.release();
    const reply = answer(opening);
    if (reply) await endWith(stream, reply);
  } catch {
    reader.release();
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}

const afterPass: (() => void)[] = [];

/**
 * Runs `fn` once the current pass of session ends is over: one `setImmediate` for all the
 * sessions a lock ends at once. Closing a session's connection to the database (its TLS write
 * and shutdown, or the cancel of a running statement) costs more CPU than telling the client,
 * so every client of the pass is told first; the client's bytes are no longer passed on
 * meanwhile (the relay stopped them), so nothing reaches the database in between. The relay
 * runs it itself when the session finishes first (`relay`'s `stopUpstream`).
 */
export function afterThisPass(fn: () => void): void {
  if (afterPass.push(fn) > 1) return;
  setImmediate(() => {
    for (const f of afterPass.splice(0)) {
      try {
        f();
      } catch {
        // A connection already gone.
      }
    }
  });
}
