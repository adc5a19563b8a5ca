/**
 * A replica in its own process, for `backend-faults.test.ts`: opens the PostgreSQL backend
 * and, by mode, keeps a heartbeat (a TTL'd key renewed every 200 ms, plus steady writes) until
 * it is killed, or takes one lease and prints it. WARDEN_SKEW_MS shifts this process's
 * Date.now (so its system clock is wrong, as on a badly synced host). Prints one JSON line
 * per event on stdout. Not a test by itself (the runner only picks up `*.test.ts`).
 *
 * Env: WARDEN_PG_CONN, WARDEN_PG_SCHEMA, WARDEN_NAME, WARDEN_MODE (heartbeat | lease),
 * WARDEN_TTL_MS, WARDEN_SKEW_MS.
 */
import { writeSync } from 'node:fs';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const skew = Number(process.env.WARDEN_SKEW_MS ?? '0');
if (skew !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + skew;
}
// Imported after the clock is skewed, so nothing captured the real Date.now first.
const { PostgresBackend } = await import('../../packages/server/src/backend');

const name = env('WARDEN_NAME');
const ttlMs = Number(env('WARDEN_TTL_MS'));
const say = (msg: object) => writeSync(1, `${JSON.stringify(msg)}\n`);

const backend = await PostgresBackend.open({
  connString: env('WARDEN_PG_CONN'),
  schema: env('WARDEN_PG_SCHEMA'),
  applicationName: `warden-${name}`,
  reapIntervalMs: 100,
});

if (env('WARDEN_MODE') === 'lease') {
  const item = await backend.create(`/lease/${name}`, 'held', { ttlMs });
  say({ type: 'lease', item, now: Date.now() });
  await backend.close();
} else {
  for (let i = 0; ; i++) {
    const hb = await backend.put(`/hb/${name}`, String(i), { ttlMs });
    await backend.put(`/load/${name}/${i % 10}`, String(i));
    if (i === 0) say({ type: 'ready', item: hb });
    await new Promise((r) => setTimeout(r, 200));
  }
}
