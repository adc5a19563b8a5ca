import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandTemplate, expandValues } from './traits';

const traits = { logins: ['alice', 'ubuntu'], db_users: ['reader'], empty: [] as string[] };

test('plain values stay as they are', () => {
  assert.deepEqual(expandTemplate('root', traits), ['root']);
});

test('internal and external templates expand to trait values', () => {
  assert.deepEqual(expandTemplate('{{internal.logins}}', traits), ['alice', 'ubuntu']);
  assert.deepEqual(expandTemplate('{{ external.db_users }}', traits), ['reader']);
  assert.deepEqual(expandTemplate('ci-{{internal.logins}}-x', traits), ['ci-alice-x', 'ci-ubuntu-x']);
});

test('missing traits and malformed templates expand to nothing', () => {
  assert.deepEqual(expandTemplate('{{internal.nope}}', traits), []);
  assert.deepEqual(expandTemplate('{{internal.empty}}', traits), []);
  assert.deepEqual(expandTemplate('{{internal.logins', traits), []);
  assert.deepEqual(expandTemplate('{{internal.logins}}{{internal.logins}}', traits), []);
  assert.deepEqual(expandTemplate('{{env.HOME}}', traits), []);
  assert.deepEqual(expandTemplate('{{internal.toString}}', traits), [], 'no prototype lookups');
  assert.deepEqual(expandTemplate('x}}', traits), []);
});

test('expandValues unions and dedupes in order', () => {
  assert.deepEqual(expandValues(['root', '{{internal.logins}}', 'alice', '{{internal.nope}}'], traits), [
    'root',
    'alice',
    'ubuntu',
  ]);
  assert.deepEqual(expandValues(undefined, traits), []);
});
