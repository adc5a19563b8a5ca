import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../errors';
import { formatResource, parseResources } from './codec';
import { resolveKind } from './kind-names';
import { validateResource, validateResourceOfKind } from './validate';

const app = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({
  kind: 'app',
  version: 'v3',
  metadata: { name: 'grafana', ...metadata },
  spec,
});

function rejects(value: unknown, message: RegExp): void {
  assert.throws(
    () => validateResource(value),
    (e) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'), String(e));
      assert.match(e.message, message);
      return true;
    },
  );
}

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
    rejects(app({ uri: 'http://x' }, { name }), /metadata\.name/);
  }
});

test('bad uri, public_addr and headers are refused with the field named', () => {
  rejects(app({ uri: 'ftp://x' }), /spec\.uri/);
  rejects(app({ uri: 'http://user:pw@x' }), /spec\.uri/);
  rejects(app({ uri: 'not a url' }), /spec\.uri/);
  rejects(app({}), /spec\.uri/);
  rejects(app({ uri: 'http://x', public_addr: 'a b' }), /spec\.public_addr/);
  rejects(app({ uri: 'http://x', public_addr: 'x.com:443' }), /spec\.public_addr/);
  rejects(
    app({ uri: 'http://x', rewrite: { headers: [{ name: 'Warden-Jwt-Assertion', value: 'x' }] } }),
    /headers/,
  );
  rejects(app({ uri: 'http://x', rewrite: { headers: [{ name: 'Host', value: 'x' }] } }), /headers/);
  rejects(app({ uri: 'http://x', rewrite: { headers: [{ name: 'X-A', value: 'a\r\nX-B: b' }] } }), /CR, LF/);
  rejects(app({ uri: 'http://x', rewrite: { headers: [{ name: 'bad name', value: 'x' }] } }), /header name/);
  rejects(app({ uri: 'http://x', surprise: true }), /surprise/);
});
