import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isWardenError } from '@warden/api';
import Database from 'better-sqlite3';
import {
  runAuditLogConformance,
  statementFixture,
  written,
} from '../../../../test/support/audit-conformance';
import { FakeClock } from '../clock';
import { AUDIT_SCHEMA_VERSION, SqliteAuditLog } from './sqlite';

const dir = mkdtempSync(join(tmpdir(), 'warden-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `a${++n}`, 'audit.sqlite');

runAuditLogConformance('sqlite', ({ clock }) => SqliteAuditLog.open({ path: freshPath(), clock }));

test('sqlite audit: events survive reopening; the file is 0600', async () => {
  const path = freshPath();
  const clock = new FakeClock();
  const a = await SqliteAuditLog.open({ path, clock });
  const e1 = await a.emit({ type: 'user.create', user: 'admin', name: 'alice', roles: ['access'] });
  await a.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const b = await SqliteAuditLog.open({ path, clock });
  clock.advance(1);
  const e2 = await b.emit({ type: 'user.delete', user: 'admin', name: 'alice' });
  assert.deepEqual(await b.search({ order: 'asc' }), [e1, e2]);
  await b.close();
});

test('sqlite audit: the events table refuses UPDATE and DELETE', async () => {
  const path = freshPath();
  const audit = await SqliteAuditLog.open({ path });
  await audit.emit({ type: 'role.created', name: 'dev' });
  await audit.close();
  const db = new Database(path);
  try {
    assert.throws(() => db.prepare("UPDATE events SET user = 'mallory'").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM events').run(), /append-only/);
    assert.equal(db.prepare<[], { n: number }>('SELECT count(*) AS n FROM events').get()?.n, 1);
  } finally {
    db.close();
  }
});

test('sqlite audit: searches by time, type, user and device use an index', async () => {
  const path = freshPath();
  await (await SqliteAuditLog.open({ path })).close();
  const db = new Database(path, { readonly: true });
  try {
    const plan = (query: Parameters<typeof SqliteAuditLog.searchSql>[0]) => {
      const { sql, params } = SqliteAuditLog.searchSql(query);
      return db
        .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...params)
        .map((r) => r.detail)
        .join('; ');
    };
    assert.match(plan({}), /USING INDEX events_time/);
    assert.match(plan({ from: '2026-01-01T00:00:00Z' }), /USING INDEX events_time/);
    assert.match(plan({ types: ['user.login'] }), /USING INDEX events_type_time/);
    assert.match(plan({ user: 'alice' }), /USING INDEX events_user_time/);
    const device = plan({ device: 'd1' });
    assert.match(device, /events_device_time/);
    assert.match(device, /events_subject_device_time/);
    assert.doesNotMatch(device, /SCAN events(?! USING)/);
  } finally {
    db.close();
  }
});

test('sqlite audit: a second process cannot open the file; newer schemas are refused', async () => {
  const path = freshPath();
  const first = await SqliteAuditLog.open({ path });
  await assert.rejects(SqliteAuditLog.open({ path }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'),
  );
  await first.close();
  const db = new Database(path);
  db.prepare("UPDATE meta SET value = ? WHERE name = 'schema_version'").run(AUDIT_SCHEMA_VERSION + 1);
  db.close();
  await assert.rejects(SqliteAuditLog.open({ path }), /newer than this warden supports/);
  await assert.rejects(SqliteAuditLog.open({ path: '' }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
});

test('sqlite audit: a session statement writer stores what emit stores, in order, and falls back for unusual statements', async () => {
  const clock = new FakeClock();
  const audit = await SqliteAuditLog.open({ path: freshPath(), clock });
  const { base, pem, statements } = statementFixture('alice', 'a"b');
  const writer = audit.statements(base);
  assert.ok(writer, 'a usual base gets a writer');
  for (const s of statements) await written(writer, s);
  for (const s of statements) await audit.emit({ ...base, ...s });
  const events = await audit.search({ order: 'asc', device: 'dev-1' });
  assert.equal(events.length, 6, 'found by the device index');
  const strip = ({ id, time, ...rest }: Record<string, unknown>) => {
    assert.match(String(id), /^[0-9a-f-]{36}$/);
    assert.equal(time, new Date(clock.now()).toISOString());
    return rest;
  };
  for (let i = 0; i < 3; i++) assert.deepEqual(strip(events[i]!), strip(events[i + 3]!), `statement ${i}`);
  assert.deepEqual(events[2]!.redacted, ['parameters[0]'], 'a private key is redacted by the general path');
  await assert.rejects(
    written(writer, { query: `INSERT ${pem}` }),
    (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    'as emit refuses it (the session then ends)',
  );
  assert.equal((await audit.search({ user: 'alice' })).length, 6, 'found by the user index');
  assert.equal(
    audit.statements({ ...base, resource: { kind: 'db', name: 'x', labels: { api_token: 'v' } } }),
    undefined,
  );
  await audit.close();
  await assert.rejects(written(writer, { query: 'SELECT 2' }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_CLOSED'),
  );
});
