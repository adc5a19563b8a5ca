import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBadResource, resourceOf } from '../../../../test/support/resources';
import { formatResource, parseResources } from './codec';
import { resolveKind } from './kind-names';
import { validateResourceOfKind } from './validate';

const CA = `-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUQ2VydGlmaWNhdGUgZm9yIHRlc3RzMAoGCCqGSM49BAMC
-----END CERTIFICATE-----
`;

const db = resourceOf('db', 'v3', 'orders');

test('a heartbeated PostgreSQL database: labels, expiry, uri', () => {
  const d = validateResourceOfKind(
    'db',
    db(
      { protocol: 'postgres', uri: 'db-1.internal:5432' },
      { labels: { env: 'prod' }, expires: '2026-01-01T00:01:00Z' },
    ),
  );
  assert.equal(d.spec.protocol, 'postgres');
  assert.equal(d.spec.uri, 'db-1.internal:5432');
  assert.equal(d.spec.ca_cert, undefined);
  assert.deepEqual(d.metadata.labels, { env: 'prod' });
});

test('a MySQL database from YAML with its own CA bundle round-trips', () => {
  const yaml = `kind: db
version: v3
metadata:
  name: billing
spec:
  protocol: mysql
  uri: "[::1]:3306"
  ca_cert: |
${(CA + CA)
  .trimEnd()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
  const [d] = parseResources(yaml);
  assert.equal(d?.kind, 'db');
  const again = parseResources(formatResource(d!, 'yaml'));
  assert.deepEqual(again[0], d);
});

test('the CLI names dbs, databases', () => {
  assert.equal(resolveKind('dbs'), 'db');
  assert.equal(resolveKind('databases'), 'db');
});

test('bad protocol, uri, CA, name and unknown fields are refused with the field named', () => {
  assertBadResource(db({ protocol: 'oracle', uri: 'h:1' }), /protocol: expected "postgres" or "mysql"/);
  assertBadResource(db({ protocol: 'postgres', uri: 'no-port' }), /uri: expected host:port/);
  assertBadResource(db({ protocol: 'postgres', uri: 'h:70000' }), /uri: expected host:port/);
  assertBadResource(
    db({ protocol: 'postgres', uri: 'h:5432', ca_cert: 'not a pem' }),
    /ca_cert: expected one or more PEM/,
  );
  assertBadResource(db({ protocol: 'postgres' }), /uri/);
  assertBadResource(db({ protocol: 'postgres', uri: 'h:5432', password: 'x' }), /password/);
  assertBadResource(db({ protocol: 'postgres', uri: 'h:5432' }, { name: 'a b' }), /name/);
});
