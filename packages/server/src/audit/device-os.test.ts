import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withDeviceOsType } from './device-os';
import { MemoryAuditLog } from './memory';

// Regression (issue 15 item 15): session and access events carried the device without os_type.
test('events naming a device get its os_type from the inventory; lookups are cached', async () => {
  const store = new MemoryAuditLog();
  const asked: string[] = [];
  const audit = withDeviceOsType(store, async (id) => {
    asked.push(id);
    return id === 'dev-1' ? 'linux' : undefined;
  });
  const device = { id: 'dev-1', asset_tag: 'tag', credential_id: 'cred' };
  await audit.emit({
    type: 'access.allowed',
    user: 'alice',
    protocol: 'ssh',
    resource: { kind: 'node', name: 'n' },
    device,
  });
  await audit.emit({
    type: 'access.allowed',
    user: 'alice',
    protocol: 'db',
    resource: { kind: 'db', name: 'd' },
    device,
  });
  await audit.emit({
    type: 'access.allowed',
    user: 'bob',
    protocol: 'ssh',
    resource: { kind: 'node', name: 'n' },
    device: { id: 'gone' },
  });
  await audit.emit({
    type: 'access.allowed',
    user: 'carol',
    protocol: 'ssh',
    resource: { kind: 'node', name: 'n' },
  });
  const events = await store.search({ order: 'asc' });
  assert.deepEqual(events[0]?.device, { ...device, os_type: 'linux' });
  assert.deepEqual(events[1]?.device, { ...device, os_type: 'linux' });
  assert.deepEqual(events[2]?.device, { id: 'gone' }, 'a device not in the inventory stays as it was');
  assert.equal(events[3]?.device, undefined);
  assert.deepEqual(asked, ['dev-1', 'gone'], 'one lookup per device that has an OS');
});

test('a failing lookup never loses the event', async () => {
  const store = new MemoryAuditLog();
  const audit = withDeviceOsType(store, async () => {
    throw new Error('backend down');
  });
  await audit.emit({
    type: 'access.denied',
    success: false,
    user: 'alice',
    protocol: 'ssh',
    device: { id: 'x' },
    error: 'no',
  });
  const [e] = await store.search();
  assert.deepEqual(e?.device, { id: 'x' });
});

test('a session statement writer gets the device’s os_type once known; none while unknown', async () => {
  const bases: unknown[] = [];
  const store = Object.assign(new MemoryAuditLog(), {
    statements(base: unknown) {
      bases.push(base);
      return { write: (_s: unknown, done: () => void) => done() };
    },
  });
  let lookups = 0;
  const audit = withDeviceOsType(store, async () => {
    lookups++;
    return 'linux';
  });
  const base = {
    type: 'db.query' as const,
    protocol: 'db' as const,
    session_id: 's',
    resource: { kind: 'db', name: 'd' },
    device: { id: 'dev-1', asset_tag: 'tag' },
  };
  assert.equal(audit.statements?.(base), undefined, 'not looked up yet: the caller emits');
  await new Promise((r) => setImmediate(r));
  assert.ok(audit.statements?.(base));
  assert.deepEqual(bases, [{ ...base, device: { id: 'dev-1', asset_tag: 'tag', os_type: 'linux' } }]);
  assert.equal(lookups, 1);
  assert.equal(
    withDeviceOsType(new MemoryAuditLog(), async () => 'linux').statements,
    undefined,
    'a log without one',
  );
});
