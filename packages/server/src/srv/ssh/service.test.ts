/**
 * The service's lifecycle without an SSH client: heartbeat (node resource with TTL, gone one
 * TTL after close), stable host ID across restarts, listen errors. Sessions, auth and locks
 * are tested against the real OpenSSH client in test/ssh-node/.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { MemoryAuditLog } from '../../audit';
import { MemoryBackend } from '../../backend';
import { CertAuthorities } from '../../ca';
import { FakeClock } from '../../clock';
import type { SshServiceConfig } from '../../config';
import type { Logger } from '../../log';
import { createServices, type Services } from '../../services';
import { SshService } from './service';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const dir = mkdtempSync(join(tmpdir(), 'warden-ssh-service-'));
const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
let services: Services;
let cas: CertAuthorities;

const config = (over: Partial<SshServiceConfig> = {}): SshServiceConfig => ({
  enabled: true,
  listenAddr: { host: '127.0.0.1', port: 0 },
  publicAddr: { host: '127.0.0.1', port: 0 },
  hostname: 'node-1',
  labels: { env: 'test' },
  ...over,
});

const start = (over: Partial<SshServiceConfig> = {}) =>
  SshService.start({
    config: config(over),
    dataDir: dir,
    backend,
    services,
    cas,
    audit: new MemoryAuditLog({ clock }),
    clock,
    logger: quiet,
    clusterName: 'warden',
    heartbeatTtlMs: 60_000,
  });

before(async () => {
  services = createServices({ backend, clock });
  await services.ensurePresets();
  cas = await CertAuthorities.init({ backend, clusterName: 'warden', clock });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the node resource is heartbeated with a TTL and expires after close', async () => {
  const ssh = await start();
  const node = await services.nodes.get(ssh.hostId);
  assert.deepEqual(node.spec, { hostname: 'node-1', addr: `127.0.0.1:${ssh.port}` });
  assert.deepEqual(node.metadata.labels, { env: 'test' });
  assert.equal(node.metadata.expires, new Date(clock.now() + 60_000).toISOString());
  assert.equal(ssh.addr, `127.0.0.1:${ssh.port}`);
  await ssh.close();
  clock.advance(59_000);
  assert.ok(await services.nodes.find(ssh.hostId), 'still listed within its TTL');
  clock.advance(2_000);
  assert.equal(await services.nodes.find(ssh.hostId), undefined, 'gone one TTL after the last beat');
});

test('the host ID is stable across restarts; public_addr goes into the resource', async () => {
  const a = await start();
  const id = a.hostId;
  await a.close();
  const b = await start({ publicAddr: { host: 'node-1.example.com', port: 3022 } });
  assert.equal(b.hostId, id);
  assert.equal((await services.nodes.get(id)).spec.addr, 'node-1.example.com:3022');
  await b.close();
});

test('an address in use is a clear BAD_CONFIG', async () => {
  const busy: Server = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const port = (busy.address() as { port: number }).port;
  try {
    await assert.rejects(
      start({ listenAddr: { host: '127.0.0.1', port } }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_CONFIG') && /already in use/.test(e.message),
    );
  } finally {
    busy.close();
  }
});
