/**
 * An audit writer in its own process, for `crash.test.ts`: opens the SQLite audit log at
 * WARDEN_AUDIT_PATH and emits events without pause, many at a time, printing the id of each
 * event on stdout (with a synchronous write) as soon as its `emit` resolved, until killed.
 * Half the lanes are database sessions writing statements through `statements()` (bulk, one
 * callback each): they print `stmt:<query>` once the statement's callback says it is durable.
 * Not a test by itself (the runner only picks up `*.test.ts`).
 */
import { writeSync } from 'node:fs';
import { SqliteAuditLog } from '@warden/server';

const path = process.env.WARDEN_AUDIT_PATH;
if (!path) throw new Error('WARDEN_AUDIT_PATH is not set');
const audit = await SqliteAuditLog.open({ path });
const pause = new Int32Array(new SharedArrayBuffer(4));
/** Writes a line before returning; stdout is a non-blocking pipe, so a full pipe (a slow reader) is waited out. */
function println(line: string): void {
  for (;;) {
    try {
      writeSync(1, `${line}\n`);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
println('ready');
let n = 0;
async function writer(lane: number): Promise<void> {
  for (;;) {
    const event = await audit.emit({ type: 'user.login', user: `lane${lane}-${n++}`, method: 'local' });
    println(event.id);
  }
}
/** A session's statements, several in flight at a time as a busy session has them. */
async function session(lane: number): Promise<void> {
  const writer = audit.statements({
    type: 'db.query',
    success: true,
    user: `lane${lane}`,
    protocol: 'db',
    resource: { kind: 'db', name: 'orders' },
    db_user: 'app',
    session_id: `session-${lane}`,
  });
  if (!writer) throw new Error('no statement writer');
  for (;;) {
    const batch = Array.from({ length: 8 }, () => `select ${lane}, ${n++}`);
    await Promise.all(
      batch.map(
        (query) =>
          new Promise<void>((resolve, reject) =>
            writer.write({ query }, (e) => {
              if (e !== undefined) return reject(e);
              println(`stmt:${query}`);
              resolve();
            }),
          ),
      ),
    );
  }
}
await Promise.all(Array.from({ length: 16 }, (_, lane) => (lane % 2 === 0 ? writer(lane) : session(lane))));
