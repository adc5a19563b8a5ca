/**
 * An app-certificate connection's access decision is remembered only until a view it reads
 * changes. The session monitor here is a test double that ends nothing (a monitor that has not
 * acted yet): so only the lock view's change notice can make the next request on the same
 * keep-alive connection be decided again — and it must be refused (the refusal ends the session,
 * and the connection with it); the connection after that gets the lock's 403.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type HttpApp, startHttpApp } from '@warden/testkit';
import type { SessionMonitor } from '../../packages/server/src/access';
import { appTlsOptions } from '../support/curl';
import { type AppCluster, appConfig, cli, startAppCluster } from './cluster';

let app: HttpApp;
let c: AppCluster;
let alice: NodeJS.ProcessEnv;

/** Registers nothing and ends nothing (stands in for a monitor that has not acted yet). */
const inertMonitor = { register: () => ({ unregister() {} }) } as unknown as SessionMonitor;

before(async () => {
  app = await startHttpApp();
  c = await startAppCluster({ enabled: true, apps: [] }, { monitor: inertMonitor });
  await c.services.apps.create({
    kind: 'app',
    version: 'v3',
    metadata: { name: 'demo', labels: { env: 'dev' } },
    spec: { uri: app.url },
  });
  alice = await c.addUser('alice', ['access']);
});

after(async () => {
  await c?.stop();
  await app?.close();
});

test('a lock refuses the next request on an open connection even when no monitor ended its session', async () => {
  const login = await cli('wsh', ['app', 'login', 'demo'], { env: alice });
  assert.equal(login.code, 0, login.stderr);
  const cfg = await appConfig(alice, 'demo');
  // One keep-alive connection: every request below goes over the same socket (the lean path).
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ...appTlsOptions(cfg) });
  const sockets = new Set<Socket>();
  const get = () =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          agent,
          host: '127.0.0.1',
          port: c.port,
          path: '/hello',
          headers: { host: new URL(cfg.uri).host, accept: 'application/json' },
        },
        (res) => {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('socket', (s) => sockets.add(s as Socket));
      req.on('error', reject);
      req.end();
    });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await get();
      assert.equal(r.status, 200, r.body);
    }
    await c.services.locks.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name: '5d1c9a7e-2b3f-4c5d-8e9f-0a1b2c3d4e5f' },
      spec: { target: { user: 'alice' }, message: 'decision memory' },
    });
    // The lock reaches the process's lock view through the watch; from then on the open
    // connection's next request is decided again: refused, which ends the session and with it
    // this connection (what the monitor would have done).
    let last: { status: number; body: string } | Error = { status: 0, body: '' };
    for (const until = Date.now() + 3000; Date.now() < until; ) {
      last = await get().catch((e: Error) => e);
      if (last instanceof Error || last.status !== 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(last instanceof Error || last.status === 403, `still served: ${JSON.stringify(last)}`);
    assert.equal(sockets.size, 1, 'until then, every request went over one connection');
    // The next connection gets the lock's 403.
    const next = await get();
    assert.equal(next.status, 403, next.body);
    assert.equal(
      JSON.parse(next.body).error.message,
      'lock targeting User:"alice" is in force: decision memory',
    );
  } finally {
    agent.destroy();
  }
});
