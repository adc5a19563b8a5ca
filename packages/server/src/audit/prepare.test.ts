import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventId } from './prepare';

test('event ids are UUIDv7: version and variant set, unique, ordered by time', () => {
  const t0 = Date.UTC(2026, 0, 1);
  const ids = Array.from({ length: 2000 }, (_, i) => eventId(t0 + Math.floor(i / 100)));
  for (const id of ids)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(
    Number.parseInt(ids[0]!.replace('-', '').slice(0, 12), 16),
    t0,
    'the first 48 bits are the time',
  );
  for (let i = 100; i < ids.length; i += 100)
    assert.ok(ids[i - 1]! < ids[i]!, 'a later millisecond sorts later');
});
