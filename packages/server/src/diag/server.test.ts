import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../log';
import { countAuditEvent, createMetrics, instrumentBackend, watchLockLag } from './metrics';
import { startDiagServer } from './server';

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

test('/readyz is 503 naming the failing checks (a throwing or hanging one too), 200 when all pass', async () => {
  let backendOk = true;
  const diag = await startDiagServer({
    host: '127.0.0.1',
    port: 0,
    metrics: createMetrics(),
    logger: silentLogger,
    checkTimeoutMs: 200,
    readiness: {
      backend: async () => (backendOk ? undefined : 'out of contact'),
      lock_view: async () => undefined,
    },
  });
  try {
    const port = diag.address.port;
    assert.deepEqual(JSON.parse((await get(port, '/readyz')).body), {
      ready: true,
      checks: { backend: 'ok', lock_view: 'ok' },
    });
    backendOk = false;
    const r = await get(port, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body).checks, { backend: 'out of contact', lock_view: 'ok' });
    assert.equal((await get(port, '/healthz')).status, 200, 'alive even when not ready');
    assert.equal((await get(port, '/nope')).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405);
  } finally {
    await diag.close();
  }
  const hanging = await startDiagServer({
    host: '127.0.0.1',
    port: 0,
    metrics: createMetrics(),
    logger: silentLogger,
    checkTimeoutMs: 100,
    readiness: {
      backend: () => new Promise(() => undefined),
      lock_view: async () => {
        throw new Error('boom');
      },
    },
  });
  try {
    const r = await get(hanging.address.port, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body).checks, { backend: 'no answer in 100 ms', lock_view: 'boom' });
  } finally {
    await hanging.close();
  }
});

test('audit events count logins, ceremonies, sessions by protocol and access decisions', async () => {
  const m = createMetrics();
  countAuditEvent(m, { type: 'user.login', success: false, user: 'a' } as never);
  countAuditEvent(m, { type: 'user.login', success: true, user: 'a' } as never);
  countAuditEvent(m, { type: 'device.enroll', success: true } as never);
  countAuditEvent(m, { type: 'session.start', success: true, protocol: 'ssh' } as never);
  countAuditEvent(m, { type: 'session.start', success: false, protocol: 'ssh' } as never);
  countAuditEvent(m, { type: 'access.denied', success: false, protocol: 'postgres' } as never);
  m.sessionStarted('kube');
  const text = await m.render();
  assert.match(text, /warden_logins_total\{outcome="failure"\} 1/);
  assert.match(text, /warden_logins_total\{outcome="success"\} 1/);
  assert.match(text, /warden_ceremonies_total\{ceremony="device_enroll",outcome="success"\} 1/);
  assert.match(text, /warden_sessions_total\{protocol="ssh"\} 1/, 'failed starts are not sessions');
  assert.match(text, /warden_sessions_total\{protocol="kube"\} 1/);
  assert.match(text, /warden_access_decisions_total\{protocol="postgres",outcome="denied"\} 1/);
  assert.match(text, /^process_cpu_user_seconds_total /m);
});

test('instrumentBackend times data calls, keeps instanceof and private fields working', async () => {
  class Store {
    #n = 1;
    async get(_k: string) {
      return this.#n;
    }
    get target() {
      return `n=${this.#n}`;
    }
  }
  const m = createMetrics();
  const b = instrumentBackend(new Store() as never, m) as unknown as Store;
  assert.ok(b instanceof Store);
  assert.equal(await b.get('x'), 1);
  assert.equal(b.target, 'n=1');
  assert.match(await m.render(), /warden_backend_request_duration_seconds_count\{op="get"\} 1/);
});

test('lock lag is observed once per new lock, from its created_at', async () => {
  const m = createMetrics();
  let listener: ((c: never) => void) | undefined;
  const view = {
    onChange(l: (c: never) => void) {
      listener = l;
      return () => undefined;
    },
  };
  watchLockLag(view as never, m, () => 10_500);
  const created_at = new Date(10_000).toISOString();
  listener!({ type: 'put', key: '/locks/a', value: { spec: { created_at } } } as never);
  listener!({ type: 'put', key: '/locks/a', value: { spec: { created_at } } } as never);
  const text = await m.render();
  assert.match(text, /warden_lock_enforcement_lag_seconds_count 1/);
  assert.match(text, /warden_lock_enforcement_lag_seconds_sum 0\.5/);
});
