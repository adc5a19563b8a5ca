/**
 * Random bytes for certificate serials, SSH certificate nonces and ceremony challenges, drawn
 * from node:crypto's CSPRNG a few kilobytes at a time: one `randomBytes` call costs a few
 * microseconds whatever its size, and a login or device authentication needs several small
 * draws (node's own `randomUUID` keeps such a pool too). Each byte is handed out once.
 * Who may import: everyone (re-exported from `@warden/api`). Tested by `random.test.ts`.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let at = POOL_SIZE;

/**
 * `n` random bytes in a buffer of their own (`n` ≤ 256; larger draws go to `randomFillSync`
 * directly).
 *
 * @example
 *   const serial = pooledRandomBytes(16);
 */
export function pooledRandomBytes(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid byte count: ${n}`);
  if (n > 256) return randomFillSync(Buffer.alloc(n));
  if (at + n > POOL_SIZE) {
    randomFillSync(pool);
    at = 0;
  }
  const out = Buffer.from(pool.subarray(at, at + n));
  // Handed out once: the pool's copy is wiped.
  pool.fill(0, at, at + n);
  at += n;
  return out;
}
