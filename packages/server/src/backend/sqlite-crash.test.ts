/**
 * SIGKILL test for the SQLite backend: a child process writes in a tight loop (puts, CAS
 * chains, TTL keys, deletes), is killed mid-write, and the file must reopen consistent:
 * integrity_check ok, gap-free event log, items equal to the replayed log, and every write
 * the child saw acknowledged present. Three kill/reopen rounds on the same file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SqliteBackend } from './sqlite';

const CHILD = fileURLToPath(new URL('./sqlite-crash.child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'warden-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child until it has acknowledged `acks` writes, SIGKILLs it, returns the last ack. */
async function writeAndKill(path: string, acks: number): Promise<{ startRev: number; lastAck: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let out = '';
  let err = '';
  let startRev = -1;
  let lastAck = -1;
  let seen = 0;
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop() ?? ''; // keep a partial last line for later
    for (const line of lines) {
      const [word, num] = line.split(' ');
      if (word === 'ready') startRev = Number(num);
      if (word === 'ack') {
        const rev = Number(num);
        assert.ok(rev > lastAck, `acks go up: ${rev} after ${lastAck}`);
        lastAck = rev;
        if (++seen === acks) child.kill('SIGKILL');
      }
    }
  });
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `the child died on its own: ${err}`);
  assert.ok(lastAck > startRev, 'the child acknowledged writes before it was killed');
  return { startRev, lastAck };
}

interface Row {
  value: string;
  create_rev: number;
  mod_rev: number;
  expires: number | null;
}

function checkFile(path: string, lastAck: number): number {
  const db = new Database(path);
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    const meta = Object.fromEntries(
      db
        .prepare<[], { name: string; value: number }>('SELECT name, value FROM meta')
        .all()
        .map((r) => [r.name, r.value]),
    );
    const rev = meta.rev!;
    assert.equal(meta.compacted_rev, 0, 'nothing compacted in this test');
    assert.ok(rev >= lastAck, `the last acknowledged write (rev ${lastAck}) is present (store at ${rev})`);

    const events = db
      .prepare<
        [],
        {
          rev: number;
          type: string;
          key: string;
          value: string | null;
          create_rev: number | null;
          expires: number | null;
        }
      >('SELECT rev, type, key, value, create_rev, expires FROM events ORDER BY rev')
      .all();
    assert.equal(events.length, rev, 'one event per revision');
    const replayed = new Map<string, Row>();
    const chains = new Map<string, number>();
    events.forEach((e, i) => {
      assert.equal(e.rev, i + 1, 'revisions are gap-free');
      if (e.type === 'delete') {
        assert.ok(replayed.delete(e.key), `delete of a live key at rev ${e.rev}`);
        return;
      }
      const prev = replayed.get(e.key);
      assert.equal(e.create_rev, prev ? prev.create_rev : e.rev, `createRev of ${e.key} at rev ${e.rev}`);
      replayed.set(e.key, { value: e.value!, create_rev: e.create_rev!, mod_rev: e.rev, expires: e.expires });
      if (e.key.startsWith('/chain/')) {
        // A CAS chain never skips or repeats a link.
        const n = Number(e.value);
        assert.equal(n, (chains.get(e.key) ?? 0) + 1, `CAS chain ${e.key} at rev ${e.rev}`);
        chains.set(e.key, n);
      }
    });
    const items = db
      .prepare<[], Row & { key: string }>(
        'SELECT key, value, create_rev, mod_rev, expires FROM items ORDER BY key',
      )
      .all();
    assert.deepEqual(
      new Map(items.map(({ key, ...row }) => [key, row])),
      replayed,
      'the items table equals the replayed event log',
    );
    return rev;
  } finally {
    db.close();
  }
}

test('sqlite: SIGKILL mid-write leaves a consistent file with every acknowledged write', {
  timeout: 120_000,
}, async () => {
  const path = join(dir, 'crash.sqlite');
  let previousRev = 0;
  for (const acks of [150, 420, 777]) {
    const { startRev, lastAck } = await writeAndKill(path, acks);
    assert.equal(startRev, previousRev, 'the child reopened at the revision the last check saw');
    previousRev = checkFile(path, lastAck);
    const backend = await SqliteBackend.open({ path, reapIntervalMs: 0 });
    assert.equal(await backend.currentRev(), previousRev);
    await backend.close();
  }
});
