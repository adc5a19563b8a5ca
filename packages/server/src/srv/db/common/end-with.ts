/** Ending a client stream with a last message (a protocol error), for every engine. */
import type { Duplex } from 'node:stream';

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
