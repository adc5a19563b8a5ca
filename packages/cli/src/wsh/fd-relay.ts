/**
 * The ProxyCommand's upload direction: OpenSSH writes the SSH stream into a pipe (our fd 0),
 * and every byte goes on into the TLS tunnel. `process.stdin.pipe(tunnel)` reads that pipe
 * into a fresh 64 KiB buffer per read and copies what was read into a right-sized one — a
 * malloc, a copy and an ArrayBuffer for the garbage collector per ~45 kB (bench/README.md, SSH,
 * fifth round). Here the pipe is read into a few 64 KiB buffers that are used again: a buffer
 * goes back to the pool only when the tunnel's write of it has completed (TLS encrypts it
 * then), and reading pauses while 256 KiB or six buffers are in flight (small reads fill a
 * buffer each), so the pool stays at a handful of buffers however OpenSSH writes.
 */
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';
import type { Writable } from 'node:stream';

/** A read never asks for more than this (libuv's own read size for streams). */
export const RELAY_READ_SIZE = 64 * 1024;
/** Reading pauses while this much is written but not yet taken by `out`... */
const MAX_IN_FLIGHT = 4 * RELAY_READ_SIZE;
/**
 * ...or while this many buffers are: a read of a few hundred bytes holds a whole buffer, and
 * by bytes alone hundreds of them could be in flight. The pool is at most this plus the one
 * the next read waits in.
 */
const MAX_BUFFERS_IN_FLIGHT = 6;

export interface FdRelay {
  /** How many read buffers were ever allocated (the pool's size). */
  readonly buffersAllocated: number;
  /** Stops reading and releases the fd's handle. */
  close(): void;
}

/**
 * Relays what arrives on `fd` (a pipe or a socket) into `out`, ending `out` at end of input
 * and destroying it if reading fails. Returns undefined when `fd` is neither (a file, a
 * terminal): the caller then pipes its stream as before.
 */
export function relayFd(fd: number, out: Writable): FdRelay | undefined {
  const free: Buffer[] = [];
  let allocated = 0;
  let inFlight = 0;
  let paused = false;
  let input: Socket;
  const full = () => inFlight >= MAX_BUFFERS_IN_FLIGHT || out.writableLength >= MAX_IN_FLIGHT;
  const written = (b: Buffer) => {
    free.push(b);
    inFlight--;
    if (paused && !full()) {
      paused = false;
      input.resume();
    }
  };
  // `onread` is a documented option of net.Socket's constructor; @types/node lists it for connect().
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: () => {
        const b = free.pop();
        if (b) return b;
        allocated++;
        return Buffer.allocUnsafe(RELAY_READ_SIZE);
      },
      callback: (n: number, buf: Uint8Array) => {
        const b = buf as Buffer;
        // The write holds a view of `b` until its callback; only then may a read reuse it.
        inFlight++;
        out.write(b.subarray(0, n), () => written(b));
        // Past a few reads' worth in flight, not at the tunnel's 16 KiB high-water mark: every
        // 64 KiB read passes that, and pausing there cost two epoll_ctl calls per read.
        if (!paused && full()) {
          paused = true;
          input.pause();
        }
        return true;
      },
    },
  };
  try {
    input = new Socket(options);
  } catch {
    return undefined; // ERR_INVALID_FD_TYPE: not a pipe or a socket
  }
  input.on('end', () => out.end());
  input.on('error', () => out.destroy());
  return {
    get buffersAllocated() {
      return allocated;
    },
    close: () => input.destroy(),
  };
}
