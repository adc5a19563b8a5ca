import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { MemoryBackend } from '../../../backend';
import { FakeClock } from '../../../clock';
import { createServices } from '../../../services';
import { DB_HEARTBEAT_TTL_MS, DbHeartbeat, dbResourceFromConfig } from './heartbeat';

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
    const hb = new DbHeartbeat({ dbs: services.dbs, clock, logger: quiet, databases: [orders] });
    await hb.start();
    hb.close();
    const stored = await services.dbs.get('orders');
    assert.equal(stored.spec.uri, 'db-1:5432');
    assert.deepEqual(stored.metadata.labels, { env: 'prod' });
    assert.equal(stored.metadata.expires, new Date(clock.now() + DB_HEARTBEAT_TTL_MS).toISOString());
    clock.advance(DB_HEARTBEAT_TTL_MS + 1000);
    assert.equal(await services.dbs.find('orders'), undefined);
  } finally {
    await backend.close();
  }
});

test('dbResourceFromConfig validates: bad names and URIs are refused', () => {
  assert.throws(
    () => dbResourceFromConfig({ name: 'a b', protocol: 'postgres', uri: 'h:1' }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'),
  );
  assert.throws(
    () => dbResourceFromConfig({ name: 'a', protocol: 'postgres', uri: 'nope' }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'),
  );
  const ca = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  assert.equal(
    dbResourceFromConfig({ name: 'a', protocol: 'mysql', uri: 'h:1', caCertPems: [ca, ca] }).spec.ca_cert,
    ca + ca,
  );
});
