import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { isWardenError, type NodeResource } from '@warden/api';
import { MemoryBackend, type RangeResult } from '../backend';
import { FakeClock } from '../clock';
import { createServices, type Services } from '../services';
import { NodeView } from './node-view';

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const node = (n: number, hostname: string, expires?: number): NodeResource => ({
  kind: 'node',
  version: 'v2',
  metadata: { name: id(n), ...(expires ? { expires: new Date(expires).toISOString() } : {}) },
  spec: { hostname, addr: `127.0.0.1:${3000 + n}` },
});

/** A memory backend that counts listings of /nodes/. */
class CountingBackend extends MemoryBackend {
  nodeRanges = 0;
  override async range(prefix: string): Promise<RangeResult> {
    if (prefix === '/nodes/') this.nodeRanges++;
    return super.range(prefix);
  }
}

let clock: FakeClock;
let backend: CountingBackend;
let services: Services;
let view: NodeView;

beforeEach(async () => {
  clock = new FakeClock(Date.UTC(2026, 0, 1));
  backend = new CountingBackend({ clock, reapIntervalMs: 0 });
  services = createServices({ backend, clock });
  view = new NodeView({ cache: services.nodeCache(), clock, nodes: services.nodes });
});
afterEach(async () => {
  view.close();
  await backend.close();
});

/** True when `find(wanted)` was answered from the view (no listing). */
async function fromView(wanted: string): Promise<boolean> {
  const before = backend.nodeRanges;
  await view.find(wanted).catch(() => undefined);
  return backend.nodeRanges === before;
}

test('node view: finds by ID and by hostname without listing the backend per lookup', async () => {
  await services.nodes.create(node(1, 'web-1'));
  await services.nodes.create(node(2, 'db-1'));
  await view.start();
  const listings = backend.nodeRanges;
  for (let i = 0; i < 50; i++) {
    assert.equal((await view.find(id(1))).spec.hostname, 'web-1');
    assert.equal((await view.find('db-1')).metadata.name, id(2));
  }
  assert.equal(backend.nodeRanges, listings, 'no listing for nodes the view holds');
});

test('node view: follows puts, hostname changes and deletes from the watch', async () => {
  await view.start();
  await services.nodes.create(node(1, 'web-1'));
  const listings = backend.nodeRanges;
  // Found through the watch (or the backend if the watch has not delivered it yet).
  assert.equal((await view.find('web-1')).metadata.name, id(1));
  await waitUntil(() => fromView('web-1'));
  const renamed = await services.nodes.upsert(node(1, 'web-2'));
  await waitUntil(async () => (await view.find(id(1))).metadata.revision === renamed.metadata.revision);
  assert.equal((await view.find('web-2')).metadata.name, id(1));
  // The old hostname is gone from the index: the backend is asked, and knows nothing.
  await assert.rejects(view.find('web-1'), (e: unknown) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'));
  await services.nodes.delete(id(1));
  await waitUntil(async () => !(await fromView(id(1)))); // gone from the view: the backend is asked
  await assert.rejects(view.find('web-2'), (e: unknown) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'));
  assert.ok(backend.nodeRanges > listings);
});

test('node view: a node the watch has not delivered yet is found in the backend', async () => {
  await view.start();
  // Watch events are delivered on a later tick: the lookup right after the write misses the view.
  const listings = backend.nodeRanges;
  await services.nodes.create(node(3, 'new-1'));
  assert.equal((await view.find('new-1')).metadata.name, id(3));
  assert.equal(backend.nodeRanges, listings + 1, 'answered by the backend');
  await waitUntil(() => fromView('new-1'));
});

test('node view: several nodes with one hostname ask for the ID; expired nodes are hidden at once', async () => {
  await services.nodes.create(node(1, 'twin'));
  await services.nodes.create(node(2, 'twin', clock.now() + 10_000));
  await view.start();
  await assert.rejects(
    view.find('twin'),
    (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && e.message.includes(`${id(1)}, ${id(2)}`),
  );
  // Node 2's heartbeat TTL passes; no reaper has deleted it yet.
  clock.advance(10_000);
  assert.equal((await view.find('twin')).metadata.name, id(1));
  await assert.rejects(view.find(id(2)), (e: unknown) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'));
});

test('node view: unknown names are NOT_FOUND (from the backend)', async () => {
  await view.start();
  const listings = backend.nodeRanges;
  await assert.rejects(view.find('nope'), (e: unknown) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'));
  assert.equal(backend.nodeRanges, listings + 1);
});

async function waitUntil(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail('condition never held');
}
