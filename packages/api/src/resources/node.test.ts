import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBadResource, resourceOf } from '../../../../test/support/resources';
import { parseResources } from './codec';
import { resolveKind } from './kind-names';
import { validateResourceOfKind } from './validate';

const node = resourceOf('node', 'v2', '0b7a6a1e-4a47-4a0f-9d4c-3e1d1c7c1a11');

test('a heartbeated node: UUID name, labels, expiry, hostname and addr', () => {
  const n = validateResourceOfKind(
    'node',
    node(
      { hostname: 'web-1', addr: '10.0.0.7:3022' },
      { labels: { env: 'prod' }, expires: '2026-01-01T00:01:00Z' },
    ),
  );
  assert.equal(n.spec.hostname, 'web-1');
  assert.equal(n.spec.sub_kind, undefined);
  assert.deepEqual(n.metadata.labels, { env: 'prod' });
});

test('an agentless OpenSSH node from YAML (IPv6 address, sub_kind openssh)', () => {
  const [n] = parseResources(
    'kind: node\nversion: v2\nmetadata:\n  name: db-host\nspec:\n  hostname: db-host\n  addr: "[::1]:22"\n  sub_kind: openssh\n',
  );
  assert.equal(n?.kind, 'node');
  assert.equal(n?.kind === 'node' && n.spec.sub_kind, 'openssh');
});

test('CLI aliases', () => {
  assert.equal(resolveKind('nodes'), 'node');
  assert.equal(resolveKind('node'), 'node');
});

test('bad nodes', () => {
  assertBadResource(node({ hostname: 'a', addr: '10.0.0.7' }), /spec\.addr: expected host:port/);
  assertBadResource(node({ hostname: 'a', addr: '10.0.0.7:0' }), /spec\.addr: expected host:port/);
  assertBadResource(node({ hostname: 'a', addr: '10.0.0.7:70000' }), /spec\.addr: expected host:port/);
  assertBadResource(node({ hostname: 'a', addr: 'a b:22' }), /spec\.addr: expected host:port/);
  assertBadResource(node({ hostname: '', addr: 'a:22' }), /spec\.hostname: must not be empty/);
  assertBadResource(node({ hostname: 'a b', addr: 'a:22' }), /spec\.hostname: must not contain spaces/);
  assertBadResource(node({ hostname: 'a', addr: 'a:22', sub_kind: 'agent' }), /spec\.sub_kind/);
  assertBadResource(node({ hostname: 'a', addr: 'a:22', port: 22 }), /spec\.port: unknown field/);
  assertBadResource(node({ addr: 'a:22' }), /spec\.hostname: expected a host name/);
});
