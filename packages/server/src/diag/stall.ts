/**
 * Warns when this process's event loop did not run for a while: every connection, lock check
 * and audit commit of the process waited that long. The usual causes are a synchronous disk
 * flush (the SQLite backend syncs on the event loop) on a slow or saturated disk, or CPU-bound
 * work; the log line gives operators (and a failing test's output) the time it happened.
 *
 * @example
 *   const stop = watchEventLoopStalls(logger);   // bin/start.ts
 *   stop();                                      // at shutdown
 */
import type { Logger } from '../log';

export interface StallWatchOptions {
  /** How often the loop is sampled (default 1 s: an idle warden wakes for it once a second, no more). */
  intervalMs?: number;
  /** A gap beyond the interval of at least this much is logged (default 1 s). */
  thresholdMs?: number;
  now?: () => number;
}

/** Starts the watch (an unref'd timer: it keeps nothing alive); returns the stop function. */
export function watchEventLoopStalls(logger: Pick<Logger, 'warn'>, opts: StallWatchOptions = {}): () => void {
  const intervalMs = opts.intervalMs ?? 1000;
  const thresholdMs = opts.thresholdMs ?? 1000;
  const now = opts.now ?? (() => performance.now());
  let last = now();
  const timer = setInterval(() => {
    const t = now();
    const stalled = t - last - intervalMs;
    last = t;
    if (stalled >= thresholdMs)
      logger.warn(
        { stalled_ms: Math.round(stalled) },
        'the event loop was blocked: every request and session of this process waited (a slow disk flush or CPU-bound work)',
      );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
