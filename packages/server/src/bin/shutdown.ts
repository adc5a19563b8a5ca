/**
 * Shutdown with a deadline, for `warden start`'s `close()`: the listeners stop accepting and
 * every service ends its sessions the gentle way (a message, then EOF); whatever is still
 * open after `SHUTDOWN_GRACE_MS` — a client that never finished its TLS or SSH handshake, a
 * tunnel that never said where it goes, a peer that ignores EOF — is destroyed, and how many
 * is logged. Without it one idle client socket kept `warden` running (and a test's `after`
 * hook that stops it waiting) until that client gave up or a handshake timer fired.
 * Internal to `bin/`.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../log';

/** How long shutdown waits for connections to end on their own before it cuts them. */
export const SHUTDOWN_GRACE_MS = 3_000;

/** The connections that tracked servers accepted and that are still open. */
export class OpenConnections {
  readonly #open = new Set<Socket>();

  /** Counts the connections `server` accepts from now on (a TLS server: the raw TCP sockets). */
  track(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.#open.add(socket);
      socket.once('close', () => this.#open.delete(socket));
    });
  }

  get size(): number {
    return this.#open.size;
  }

  /** Destroys every open connection; returns how many there were. */
  destroyAll(): number {
    const n = this.#open.size;
    for (const socket of this.#open) socket.destroy();
    this.#open.clear();
    return n;
  }
}

/**
 * Runs `gentle` (stop listening, end the sessions); if it has not finished after `graceMs`,
 * cuts every connection still open (logged with how many), then waits for `gentle` at most
 * `graceMs` more — shutdown always finishes.
 *
 * @example
 *   await closeWithDeadline(async () => { tunnels.close(); await ssh.close(); await proxyClosed; },
 *     { open, graceMs: SHUTDOWN_GRACE_MS, logger });
 */
export async function closeWithDeadline(
  gentle: () => Promise<void>,
  o: { open: OpenConnections; graceMs: number; logger: Logger },
): Promise<void> {
  const done = gentle();
  if (await finishesWithin(done, o.graceMs)) return;
  const cut = o.open.destroyAll();
  o.logger.warn(
    { cut, grace_ms: o.graceMs },
    `shutdown: cut ${cut} connection(s) still open after ${o.graceMs} ms`,
  );
  if (!(await finishesWithin(done, o.graceMs))) {
    o.logger.error(
      { grace_ms: o.graceMs },
      'shutdown: services still closing after the connections were cut; exiting anyway',
    );
  }
}

/** True when `p` settles within `ms` (a rejection is rethrown). */
async function finishesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
