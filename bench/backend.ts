/**
 * Backend benchmark (issue 7 point 9): writes per second and watch fan-out latency (a write on
 * one backend instance until the event arrives on another) for PostgreSQL against SQLite, in
 * the same run, printed as ratios. Never asserted; numbers depend on the machine.
 *
 * PostgreSQL is a throwaway server from the testkit, with fsync and synchronous_commit ON so
 * that both engines make every acknowledged write durable. SQLite's file belongs to one process,
 * so its "other instance" is a watcher on the same instance (the best case it can offer).
 *
 *   npm run bench:backend                 # defaults
 *   npm run bench:backend -- --writes 5000 --events 1000 --concurrency 16
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Backend, PostgresBackend, SqliteBackend } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';

const { values: args } = parseArgs({
  options: {
    writes: { type: 'string', default: '2000' },
    events: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '8' },
  },
});
const WRITES = Number(args.writes);
const EVENTS = Number(args.events);
const CONCURRENCY = Number(args.concurrency);

interface Result {
  sequential: number;
  concurrent: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Writes per second, one writer after another. */
async function sequentialWrites(backend: Backend, n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++)
    await backend.put(`/bench/seq/${i % 100}`, JSON.stringify({ i, pad: 'x'.repeat(200) }));
  return n / ((performance.now() - start) / 1000);
}

/** Writes per second with `concurrency` writers in flight (spread over the given instances). */
async function concurrentWrites(backends: Backend[], n: number, concurrency: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const backend = backends[w % backends.length]!;
      for (let i = next++; i < n; i = next++) {
        await backend.put(`/bench/par/${i % 100}`, JSON.stringify({ i, pad: 'x'.repeat(200) }));
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

/** Milliseconds from a put on `writer` until its event comes out of a watcher on `reader`, sorted. */
async function fanOut(writer: Backend, reader: Backend, n: number): Promise<number[]> {
  const watcher = reader.watch('/bench/fan/', { sinceRev: await writer.currentRev() });
  const it = watcher[Symbol.asyncIterator]();
  const latencies: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `/bench/fan/${i}`;
    const start = performance.now();
    await writer.put(key, String(i));
    for (;;) {
      const r = await it.next();
      if (r.done) throw new Error('the watcher ended');
      if (r.value.type === 'put' && r.value.item.key === key) break;
    }
    latencies.push(performance.now() - start);
  }
  watcher.close();
  return latencies.sort((a, b) => a - b);
}

async function measure(name: string, writer: Backend, reader: Backend, writers: Backend[]): Promise<Result> {
  process.stderr.write(`${name}: ${WRITES} sequential writes…\n`);
  const sequential = await sequentialWrites(writer, WRITES);
  process.stderr.write(`${name}: ${WRITES} writes, ${CONCURRENCY} in flight…\n`);
  const concurrent = await concurrentWrites(writers, WRITES, CONCURRENCY);
  process.stderr.write(`${name}: ${EVENTS} fan-out round trips…\n`);
  const lat = await fanOut(writer, reader, EVENTS);
  return { sequential, concurrent, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

const check = requirePostgres();
if (!check.ok) process.exit(0);

const dir = mkdtempSync(join(tmpdir(), 'warden-bench-'));
const server = await startPostgres({
  settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' },
});
try {
  const sqlite = await SqliteBackend.open({ path: join(dir, 'backend.sqlite') });
  const sqliteResult = await measure('sqlite', sqlite, sqlite, [sqlite]);
  await sqlite.close();

  const replicas = await Promise.all(
    [0, 1].map((i) =>
      PostgresBackend.open({ connString: server.connString, schema: 'bench', applicationName: `bench-${i}` }),
    ),
  );
  const [a, b] = replicas as [PostgresBackend, PostgresBackend];
  const pgResult = await measure('postgres', a, b, replicas);
  await Promise.all(replicas.map((r) => r.close()));

  const row = (label: string, unit: string, s: number, p: number, better: 'higher' | 'lower') =>
    `${label.padEnd(34)} ${s.toFixed(1).padStart(10)} ${p.toFixed(1).padStart(10)} ${unit.padEnd(6)} ${(p / s).toFixed(2).padStart(8)}x (${better} is better)`;
  console.log(
    `\nbackend benchmark: ${WRITES} writes, ${EVENTS} fan-out events, ${CONCURRENCY} concurrent writers`,
  );
  console.log(
    `${''.padEnd(34)} ${'sqlite'.padStart(10)} ${'postgres'.padStart(10)} ${''.padEnd(6)} ${'pg/sqlite'.padStart(9)}`,
  );
  console.log(row('writes/s, sequential', '/s', sqliteResult.sequential, pgResult.sequential, 'higher'));
  console.log(
    row(`writes/s, ${CONCURRENCY} in flight`, '/s', sqliteResult.concurrent, pgResult.concurrent, 'higher'),
  );
  console.log(row('fan-out latency p50 (write → event)', 'ms', sqliteResult.p50, pgResult.p50, 'lower'));
  console.log(row('fan-out latency p99 (write → event)', 'ms', sqliteResult.p99, pgResult.p99, 'lower'));
  console.log(
    '(sqlite: watcher on the writing instance; postgres: writer and watcher are separate instances)',
  );
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
