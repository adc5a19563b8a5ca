/**
 * `parseEventNotification`: what replicas take from the event channel's payloads (schema
 * version 2). A payload it cannot trust is ignored (as a lost notification: the watchers then
 * read the events table), never turned into an event.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ownWriteEvent, parseEventNotification } from './postgres';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

test('a revision alone, a put and a delete', () => {
  assert.deepEqual(parseEventNotification('42'), { rev: 42 });
  const put = JSON.stringify({
    rev: 7,
    type: 'put',
    key: '/locks/x',
    value: b64('a\0b 😀'),
    create_rev: 5,
    expires: null,
  });
  assert.deepEqual(parseEventNotification(put), {
    rev: 7,
    event: { type: 'put', rev: 7, item: { key: '/locks/x', value: 'a\0b 😀', createRev: 5, modRev: 7 } },
  });
  const ttl = JSON.stringify({ rev: 8, type: 'put', key: '/k', value: b64('v'), create_rev: 8, expires: 99 });
  assert.deepEqual(parseEventNotification(ttl)?.event, {
    type: 'put',
    rev: 8,
    item: { key: '/k', value: 'v', createRev: 8, modRev: 8, expires: 99 },
  });
  const del = JSON.stringify({
    rev: 9,
    type: 'delete',
    key: '/k',
    value: null,
    create_rev: null,
    expires: null,
  });
  assert.deepEqual(parseEventNotification(del), { rev: 9, event: { type: 'delete', rev: 9, key: '/k' } });
});

test("PostgreSQL's line breaks inside the base64 value are ignored", () => {
  const value = 'x'.repeat(200);
  const wrapped = b64(value).replace(/(.{76})/g, '$1\n');
  const put = JSON.stringify({
    rev: 3,
    type: 'put',
    key: '/k',
    value: wrapped,
    create_rev: 3,
    expires: null,
  });
  const item = parseEventNotification(put)?.event;
  assert.equal(item?.type === 'put' && item.item.value, value);
});

test('payloads it cannot trust carry no event', () => {
  for (const bad of [undefined, '', 'abc', '-1', '0', '1.5', '{', '{"rev":"7"}', '{"rev":7}', '[1]']) {
    assert.equal(parseEventNotification(bad)?.event, undefined, String(bad));
  }
  for (const bad of [undefined, '', 'abc', '-1', '0', '1.5', '{', '{"rev":"7"}', '[1]']) {
    assert.equal(parseEventNotification(bad), undefined, String(bad));
  }
  // A put it cannot read keeps its revision (the watchers read it), never a made-up event.
  for (const partial of [
    { rev: 7, type: 'put', key: '/k', value: 5, create_rev: 7, expires: null },
    { rev: 7, type: 'put', key: '/k', value: 'dg==', create_rev: '7', expires: null },
    { rev: 7, type: 'put', key: '/k', value: 'dg==', create_rev: 7, expires: 'soon' },
    { rev: 7, type: 'upsert', key: '/k', value: 'dg==', create_rev: 7, expires: null },
  ]) {
    assert.deepEqual(parseEventNotification(JSON.stringify(partial)), { rev: 7 }, JSON.stringify(partial));
  }
});

test("a replica's own write: its one event when the revision follows the head it knew", () => {
  const row = { o_status: 'ok', o_rev: 11, o_create_rev: 4, o_expires: null } as const;
  const value = Buffer.from('a\0b 😀', 'utf8');
  assert.deepEqual(ownWriteEvent('put', '/locks/x', value, row, 10), {
    type: 'put',
    rev: 11,
    item: { key: '/locks/x', value: 'a\0b 😀', createRev: 4, modRev: 11 },
  });
  assert.deepEqual(ownWriteEvent('cas', '/k', value, { ...row, o_create_rev: 11, o_expires: 99 }, 10), {
    type: 'put',
    rev: 11,
    item: { key: '/k', value: 'a\0b 😀', createRev: 11, modRev: 11, expires: 99 },
  });
  assert.deepEqual(ownWriteEvent('delete', '/k', null, { ...row, o_create_rev: null }, 10), {
    type: 'delete',
    rev: 11,
    key: '/k',
  });
  // The stored bytes, decoded as a notification's are (the backend refuses lone surrogates).
  const lone = Buffer.from('x\uD800', 'utf8');
  assert.equal(
    (ownWriteEvent('put', '/k', lone, row, 10) as { item: { value: string } }).item.value,
    'x\uFFFD',
  );
});

test('no own event when the write may have made others, or none', () => {
  const row = { o_status: 'ok', o_rev: 12, o_create_rev: 12, o_expires: null } as const;
  const v = Buffer.from('v');
  // Another replica committed in between, or the write reaped expired keys first.
  assert.equal(ownWriteEvent('put', '/k', v, row, 10), undefined);
  // A range delete is one event per key.
  assert.equal(ownWriteEvent('delete_range', '/k', null, { ...row, o_rev: 11 }, 10), undefined);
  // A failed condition made no event (the revision may still have moved: reaped keys).
  for (const o_status of ['exists', 'not_found', 'changed'] as const)
    assert.equal(ownWriteEvent('create', '/k', v, { ...row, o_status, o_rev: 11 }, 10), undefined);
  // Larger than a notification carries: not kept in memory either.
  assert.equal(ownWriteEvent('put', '/k', Buffer.alloc(20_000), { ...row, o_rev: 11 }, 10), undefined);
});
