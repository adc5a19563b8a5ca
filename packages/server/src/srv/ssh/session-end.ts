/**
 * Ending SSH sessions from the server's side (a lock, an expired certificate), shared by the
 * Warden node (`session.ts`, `service.ts`) and the proxy's agentless sessions
 * (`agentless.ts`): the message, EOF and close go out in one write per connection, and the
 * processes are hung up only after every session the same pass ends has had its message
 * relayed. Who may import: this folder.
 */
import type { Socket } from 'node:net';
import type { Connection, ServerChannel } from 'ssh2';

/** The socket (TCP, or the proxy's TLS stream) under an ssh2 server connection. */
export function socketOf(conn: Connection): Socket | undefined {
  return (conn as unknown as { _sock?: Socket })._sock;
}

/**
 * Runs `fn` with the connection's socket corked: ssh2 writes each packet to the socket as
 * it is made, so a message, EOF and close would otherwise be three writes (three TLS records
 * through the proxy).
 */
export function corked(conn: Connection, fn: () => void): void {
  const sock = socketOf(conn);
  sock?.cork();
  try {
    fn();
  } finally {
    sock?.uncork();
  }
}

/**
 * Tells the client why its session ends: `\r\nERROR: <message>\r\n` on stderr (stdout for a
 * PTY session, whose stderr is the same terminal), then EOF and close, so the client prints
 * it and ends the session itself (a client that reads a disconnect first may drop it).
 * Nothing when the channel is gone.
 */
export function endWithMessage(ch: ServerChannel | undefined, pty: boolean, message: string): void {
  if (!ch?.writable) return;
  try {
    const text = `\r\nERROR: ${message}\r\n`;
    if (pty) ch.write(text);
    else ch.stderr.write(text);
    ch.end();
  } catch {
    // The channel is already gone: nothing to tell.
  }
}

/**
 * Runs `fn` a grace period after the messages of the current pass have left (see
 * `afterMessagesLeave`): the time clients get to print the message and leave on their own
 * before they are disconnected. Counted from then, not from the pass, or after a long pass
 * (a thousand sessions on a loaded machine) the overdue grace timers would run before the
 * messages are relayed, and cut what they were waiting for.
 */
export function afterGrace(ms: number, fn: () => void): void {
  afterMessagesLeave(() => setTimeout(fn, ms).unref());
}

const afterMessages: (() => void)[] = [];

/**
 * Runs `fn` (a hang-up: signals, a disconnect) once the messages written in the current pass
 * have left this process: after the next round of I/O, in which a proxy running in the same
 * process relays them. One batch for every session of the pass, so no session's message waits
 * behind another's hang-up (a `kill` per process group, the exits it causes).
 */
export function afterMessagesLeave(fn: () => void): void {
  if (afterMessages.push(fn) > 1) return;
  // The first immediate runs before the next poll for I/O; the second after it.
  setImmediate(() =>
    setImmediate(() => {
      for (const f of afterMessages.splice(0)) {
        try {
          f();
        } catch {
          // A hang-up of something already gone.
        }
      }
    }),
  );
}
