import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditTable } from './audit';

test('the audit table names a node by its host name, not its ID; the ID stays out of Details', () => {
  const id = '5f0e3c1a-6a2b-4c1d-9e8f-0a1b2c3d4e5f';
  const text = auditTable(
    [
      {
        time: '2026-12-06T05:00:00.000Z',
        type: 'session.start',
        code: 'W6000I',
        user: 'alice',
        resource: { kind: 'node', name: id, hostname: 'web-1', labels: { env: 'prod' } },
        node: 'web-1',
        login: 'root',
        session_type: 'shell',
      },
      // Events from before nodes carried a host name: the ID is all there is.
      {
        time: '2026-12-06T05:00:01.000Z',
        type: 'session.end',
        code: 'W6001I',
        resource: { kind: 'node', name: id },
      },
      {
        time: '2026-12-06T05:00:02.000Z',
        type: 'session.start',
        code: 'W6000I',
        resource: { kind: 'db', name: 'orders' },
      },
    ],
    200,
  );
  const [header, , first, second, third] = text.trimEnd().split('\n');
  assert.match(header!, /^Time +Type +Code +User +Resource +Outcome +Details$/);
  assert.match(first!, /alice +node\/web-1 +success +login=root session_type=shell$/);
  assert.ok(!first!.includes(id), first);
  assert.ok(!first!.includes('node=web-1'), 'the host name is not repeated');
  assert.match(second!, new RegExp(`node/${id}`));
  assert.match(third!, /db\/orders/);
});
