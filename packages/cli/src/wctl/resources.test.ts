/** `wctl get|edit|rm KIND[/NAME]`: a misspelt kind gets a suggestion; good ones parse as before. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { parseRef, textTable } from './resources';

test('kinds and aliases parse as parseResourceRef parses them', () => {
  assert.deepEqual(parseRef('roles'), { kind: 'role' });
  assert.deepEqual(parseRef('Users/alice'), { kind: 'user', name: 'alice' });
  assert.deepEqual(parseRef('cap'), { kind: 'cluster_auth_preference' });
});

test('a misspelt kind says BAD_PARAMETER with the closest kind; nonsense lists the kinds', () => {
  for (const [word, best] of [
    ['rols', 'role'],
    ['usr/alice', 'user'],
    ['nodez', 'node'],
    ['databse', 'database'],
  ] as const) {
    assert.throws(
      () => parseRef(word),
      (e) =>
        isWardenError(e) &&
        e.code === 'WARDEN_ERR_BAD_PARAMETER' &&
        e.message.includes(`did you mean "${best}"?`),
      word,
    );
  }
  assert.throws(
    () => parseRef('xyzzyplugh'),
    (e) =>
      isWardenError(e) &&
      e.code === 'WARDEN_ERR_BAD_PARAMETER' &&
      !e.message.includes('did you mean') &&
      e.message.includes('expected one of: role, roles'),
  );
});

test('wctl get lists labels sorted by key in every table that has a Labels column', () => {
  const metadata = { name: 'one', labels: { zone: 'b', env: 'prod', app: 'web' } };
  const items = {
    node: { metadata, spec: { hostname: 'one', addr: '10.0.0.1:3022' } },
    db: { metadata, spec: { protocol: 'postgres', uri: 'db:5432' } },
    app: { metadata, spec: { uri: 'http://app:80', public_addr: 'one.example' } },
  } as const;
  for (const [kind, r] of Object.entries(items)) {
    const out = textTable(kind as 'node' | 'db' | 'app', [r]);
    assert.match(out, /Labels/, kind);
    assert.ok(out.includes('app=web,env=prod,zone=b'), `${kind}: ${out}`);
  }
});
