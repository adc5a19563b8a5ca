import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBadResource, resourceOf } from '../../../../test/support/resources';
import { formatResource, parseResources } from './codec';
import { resolveKind } from './kind-names';
import { validateResourceOfKind } from './validate';

const app = resourceOf('app', 'v3', 'grafana');

test('an app from YAML: uri, public_addr, rewrite headers, labels; it round-trips', () => {
  const yaml = `kind: app
version: v3
metadata:
  name: grafana
  description: Dashboards
  labels: { env: prod }
spec:
  uri: http://127.0.0.1:3000
  public_addr: grafana.example.com
  rewrite:
    headers:
      - { name: X-Env, value: prod }
  audit_requests: true
`;
  const [a] = parseResources(yaml);
  assert.ok(a?.kind === 'app');
  assert.equal(a.spec.uri, 'http://127.0.0.1:3000');
  assert.equal(a.spec.public_addr, 'grafana.example.com');
  assert.deepEqual(a.spec.rewrite?.headers, [{ name: 'X-Env', value: 'prod' }]);
  assert.equal(a.spec.audit_requests, true);
  assert.deepEqual(parseResources(formatResource(a, 'yaml')), [a]);
  assert.equal(resolveKind('apps'), 'app');
});

test('app names are DNS labels (they become <app>.<proxy host>)', () => {
  for (const name of ['a', 'grafana', 'app-1', '0x'])
    validateResourceOfKind('app', app({ uri: 'http://x' }, { name }));
  for (const name of ['Grafana', 'my_app', '-a', 'a-', 'a.b', 'x'.repeat(64), '']) {
    assertBadResource(app({ uri: 'http://x' }, { name }), /metadata\.name/);
  }
});

test('bad uri, public_addr and headers are refused with the field named', () => {
  assertBadResource(app({ uri: 'ftp://x' }), /spec\.uri/);
  assertBadResource(app({ uri: 'http://user:pw@x' }), /spec\.uri/);
  assertBadResource(app({ uri: 'not a url' }), /spec\.uri/);
  assertBadResource(app({}), /spec\.uri/);
  assertBadResource(app({ uri: 'http://x', public_addr: 'a b' }), /spec\.public_addr/);
  assertBadResource(app({ uri: 'http://x', public_addr: 'x.com:443' }), /spec\.public_addr/);
  assertBadResource(
    app({ uri: 'http://x', rewrite: { headers: [{ name: 'Warden-Jwt-Assertion', value: 'x' }] } }),
    /headers/,
  );
  assertBadResource(
    app({ uri: 'http://x', rewrite: { headers: [{ name: 'Host', value: 'x' }] } }),
    /headers/,
  );
  assertBadResource(
    app({ uri: 'http://x', rewrite: { headers: [{ name: 'X-A', value: 'a\r\nX-B: b' }] } }),
    /CR, LF/,
  );
  assertBadResource(
    app({ uri: 'http://x', rewrite: { headers: [{ name: 'bad name', value: 'x' }] } }),
    /header name/,
  );
  assertBadResource(app({ uri: 'http://x', surprise: true }), /surprise/);
});
