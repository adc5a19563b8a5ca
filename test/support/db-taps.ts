/**
 * Test-only: feeds a database relay tap (srv/db `Tap`: ClientTap/ServerTap of either protocol)
 * as the relay does, and cuts a byte stream into chunks that cross every packet boundary.
 * Who may import: `*.test.ts` files (the mysql and postgres relay tests).
 */

/** The shape of srv/db's `Tap`, so this helper needs no server import. */
export interface TapLike {
  attach(sink: { write(chunk: Buffer): void; end(): void }): void;
  push(chunk: Buffer): void;
}

/**
 * Attaches a sink to `tap`: `out` resolves with what the tap wrote once it ends its
 * direction (or `end()` is called); `failed` resolves with the first error `push` threw.
 */
export function tapHarness(tap: TapLike) {
  const parts: Buffer[] = [];
  let done!: (b: Buffer) => void;
  let fail!: (e: Error) => void;
  const out = new Promise<Buffer>((r) => {
    done = r;
  });
  const failed = new Promise<Error>((r) => {
    fail = r;
  });
  tap.attach({ write: (b) => parts.push(Buffer.from(b)), end: () => done(Buffer.concat(parts)) });
  return {
    out,
    failed,
    write(chunk: Buffer) {
      try {
        tap.push(chunk);
      } catch (e) {
        fail(e as Error);
      }
    },
    end: () => done(Buffer.concat(parts)),
  };
}

/** Splits `b` into chunks of 1..7 bytes, so packets and messages cross chunk boundaries everywhere. */
export function smallChunks(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, n = 1; at < b.length; at += n, n = (n % 7) + 1) out.push(b.subarray(at, at + n));
  return out;
}
