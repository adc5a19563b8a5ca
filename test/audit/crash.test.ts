/**
 * Group commit keeps its promise: an audit event whose `emit` resolved is on disk, even when
 * the process dies at once (SIGKILL while batches are in flight). A writer process prints
 * each acknowledged id; after a few thousand we kill it and look for every one of them in
 * the file. An acknowledgement given before the batch's commit would show up as a missing id.
 * Half the writer's lanes are database sessions' statements (the bulk path with a callback per
 * statement, `AuditLog.statements`): each one acknowledged must be in the file too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SqliteAuditLog } from '@warden/server';

const CHILD = fileURLToPath(new URL('./emitter.child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'warden-audit-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('sqlite audit: kill -9 during group commits loses no acknowledged event', async () => {
  const path = join(dir, 'audit.sqlite');
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, WARDEN_AUDIT_PATH: path },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
  const acked: string[] = [];
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    child.on('exit', () => reject(new Error('the writer exited before it was killed')));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (line !== 'ready') acked.push(line);
      if (acked.length >= 3000 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  // Acknowledgements already in the pipe when the writer died count too.
  await new Promise((r) => child.stdout.on('end', r));
  for (const line of partial.split('\n')) if (line) acked.push(line);
  assert.equal(await exited, 'SIGKILL');

  const audit = await SqliteAuditLog.open({ path });
  try {
    const stored = new Set<string>();
    for (;;) {
      const page = await audit.search({ order: 'asc', limit: 10_000, from: new Date(0) });
      for (const e of page) {
        stored.add(e.id);
        if (e.type === 'db.query') stored.add(`stmt:${String(e.query)}`);
      }
      if (page.length < 10_000) break;
      throw new Error('more events than one page; raise the page size');
    }
    const missing = acked.filter((id) => !stored.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged events lost`);
    assert.ok(stored.size >= acked.length);
    const statements = acked.filter((a) => a.startsWith('stmt:')).length;
    assert.ok(
      statements > 100 && acked.length - statements > 100,
      `both kinds acknowledged (${statements} statements)`,
    );
  } finally {
    await audit.close();
  }
});
