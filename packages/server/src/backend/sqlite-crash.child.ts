/**
 * Child process for `sqlite-crash.test.ts`: opens the SQLite backend at argv[2] and writes
 * in a tight loop until killed, printing `ack <rev>` for every write whose promise resolved
 * (some of them asked for together, so that they share a batch).
 * Not a test by itself (the runner only picks up `*.test.ts`).
 */
import { writeSync } from 'node:fs';
import { isWardenError } from '@warden/api';
import { SqliteBackend } from './sqlite';

const path = process.argv[2];
if (!path) throw new Error('usage: sqlite-crash.child.ts <db path>');

const backend = await SqliteBackend.open({ path, reapIntervalMs: 20 });
const ack = (rev: number) => writeSync(1, `ack ${rev}\n`);
writeSync(1, `ready ${await backend.currentRev()}\n`);

for (let i = 0; ; i++) {
  // A CAS chain: each link reads the counter and swaps in counter+1.
  const chain = `/chain/${i % 3}`;
  const cur = await backend.get(chain);
  if (cur) {
    ack((await backend.compareAndSwap(chain, cur.modRev, String(Number(cur.value) + 1))).modRev);
  } else {
    ack((await backend.create(chain, '1')).modRev);
  }
  ack((await backend.put(`/items/${i % 50}`, JSON.stringify({ i, pad: 'x'.repeat(i % 300) }))).modRev);
  if (i % 5 === 0) ack((await backend.put(`/ttl/${i % 20}`, String(i), { ttlMs: 30 })).modRev);
  if (i % 3 === 0) {
    // Writes asked for together share one commit (group commit); one of them fails (the key
    // exists) without undoing the others. Acknowledged in call order = revision order.
    const together = await Promise.allSettled([
      backend.put(`/group/${i % 10}/a`, String(i)),
      backend.create('/chain/0', 'never'),
      backend.put(`/group/${i % 10}/b`, String(i)),
      backend.compareAndSwap(`/items/${i % 50}`, 1, 'stale'),
      backend.put(`/group/${i % 10}/c`, String(i)),
    ]);
    for (const r of together) if (r.status === 'fulfilled') ack(r.value.modRev);
  }
  if (i % 7 === 0 && (await backend.delete(`/items/${(i * 3) % 50}`))) ack(await backend.currentRev());
  if (i % 41 === 0) {
    try {
      ack((await backend.create(`/once/${i % 4}`, String(i))).modRev);
    } catch (err) {
      if (!isWardenError(err, 'WARDEN_ERR_ALREADY_EXISTS')) throw err;
    }
  }
  if (i % 97 === 0 && (await backend.deleteRange('/once/')) > 0) ack(await backend.currentRev());
}
