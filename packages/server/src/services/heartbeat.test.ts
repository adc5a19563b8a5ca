import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateResourceOfKind } from '@warden/api';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { dbResourceFromConfig } from '../srv/db';
import { HEARTBEAT_TTL_MS, ResourceHeartbeat } from './heartbeat';
import { createServices } from './services';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

test('configured databases are published with a TTL and drop out when the beats stop', async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const services = createServices({ backend, clock });
  try {
    const orders = dbResourceFromConfig({
      name: 'orders',
      protocol: 'postgres',
      uri: 'db-1:5432',
      labels: { env: 'prod' },
    });
    const hb = new ResourceHeartbeat({
      store: services.dbs,
      resources: [orders],
      what: 'database',
      clock,
      logger: quiet,
    });
    await hb.start();
    hb.close();
    const stored = await services.dbs.get('orders');
    assert.equal(stored.spec.uri, 'db-1:5432');
    assert.deepEqual(stored.metadata.labels, { env: 'prod' });
    assert.equal(stored.metadata.expires, new Date(clock.now() + HEARTBEAT_TTL_MS).toISOString());
    clock.advance(HEARTBEAT_TTL_MS + 1000);
    assert.equal(await services.dbs.find('orders'), undefined);
  } finally {
    await backend.close();
  }
});

test('configured apps likewise: each beat renews the TTL; a failed beat is logged as the app heartbeat', async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const services = createServices({ backend, clock });
  const warned: string[] = [];
  try {
    const wiki = validateResourceOfKind('app', {
      kind: 'app',
      version: 'v3',
      metadata: { name: 'wiki' },
      spec: { uri: 'http://127.0.0.1:9' },
    });
    let fail = false;
    const store = {
      upsert: (r: typeof wiki) => (fail ? Promise.reject(new Error('disk full')) : services.apps.upsert(r)),
    };
    const hb = new ResourceHeartbeat({
      store,
      resources: [wiki],
      what: 'app',
      clock,
      logger: { ...quiet, warn: (_o: unknown, msg: string) => void warned.push(msg) },
      intervalMs: 5,
    });
    await hb.start();
    clock.advance(HEARTBEAT_TTL_MS - 1000);
    await hb.beat();
    assert.equal(
      (await services.apps.get('wiki')).metadata.expires,
      new Date(clock.now() + HEARTBEAT_TTL_MS).toISOString(),
      'renewed by the beat',
    );
    fail = true;
    for (let i = 0; warned.length === 0; i++) {
      if (i > 400) assert.fail('no failed beat was logged');
      await new Promise((r) => setTimeout(r, 5));
    }
    hb.close();
    assert.equal(warned[0], 'app heartbeat failed; retrying');
  } finally {
    await backend.close();
  }
});
