import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { presetRoles, type RoleResource } from '@warden/api';
import { MemoryBackend } from '../backend';
import { type Clock, FakeClock, systemClock } from '../clock';
import type { Logger } from '../log';
import { createServices } from '../services';
import { AccessChecker, type ClusterSettings, STALE_LOCK_VIEW } from './check';
import { makeIdentity, nodeLockTargets } from './identity';
import { certificateExpiredMessage, MIN_STALENESS_CHECK_MS, SessionMonitor } from './session-monitor';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const presets = Object.fromEntries(presetRoles().map((r) => [r.metadata.name, r])) as Record<
  string,
  RoleResource
>;
const DEVICE = { deviceId: 'dev-1', assetTag: 'A1', credentialId: 'c-1' };
const NODE = { id: '6a3c2f7e-1c7a-4c1b-9d1e-2b2f0c8f1a11', hostname: 'web-1' };

/** A session that records how it ended; `ended` resolves with the message. */
function session(identity = makeIdentity({ user: 'alice', roles: ['access'] }), targets = {}) {
  let resolve!: (m: string) => void;
  const ended = new Promise<string>((r) => {
    resolve = r;
  });
  const calls: string[] = [];
  return {
    identity,
    targets,
    protocol: 'test',
    calls,
    ended,
    end(message: string) {
      calls.push(message);
      resolve(message);
    },
  };
}

// Every wait below is for an event; a monitor that fails to end a session must fail the test,
// not hang it (the keep-alive interval would hold the process open for ever).
describe('SessionMonitor over a live lock view', { timeout: 60_000 }, () => {
  // Everything a test built (a test may set up twice), closed after it.
  const opened: { close(): unknown }[] = [];
  // The monitor's timers do not hold the process open (a server's sockets do): this does.
  let keepAlive: NodeJS.Timeout | undefined;
  afterEach(async () => {
    clearInterval(keepAlive);
    keepAlive = undefined;
    for (const o of opened.splice(0).reverse()) await o.close();
  });

  async function setUp(
    clock: Clock = systemClock,
    settings: () => ClusterSettings | undefined = () => ({
      deviceTrustMode: 'off',
      lockingMode: 'best_effort',
    }),
    lockMaxStalenessMs = 200,
  ) {
    keepAlive ??= setInterval(() => undefined, 1000);
    const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    opened.push(backend);
    const services = createServices({ backend, clock });
    const locks = services.lockCache();
    await locks.start();
    const checker = new AccessChecker({
      clock,
      locks,
      role: (n) => presets[n],
      clusterSettings: settings,
      lockMaxStalenessMs,
    });
    const monitor = new SessionMonitor({
      checker,
      clock,
      logger: quiet,
      changes: [(fn) => locks.onChange(() => fn())],
    });
    const lock = (target: Record<string, string>, message?: string) =>
      services.locks.create({
        kind: 'lock',
        version: 'v2',
        metadata: { name: crypto.randomUUID() },
        spec: { target, ...(message ? { message } : {}) },
      });
    opened.push(locks, monitor);
    return { services, locks, checker, monitor, lock };
  }

  test('a lock ends exactly the matching sessions, at once, with the lock message', async () => {
    const { monitor, lock } = await setUp();
    const alice = session();
    const bob = session(makeIdentity({ user: 'bob', roles: ['access'] }));
    const onNode = session(makeIdentity({ user: 'carol', roles: ['editor'] }), {
      login: 'root',
      ...nodeLockTargets(NODE),
    });
    const withDevice = session(makeIdentity({ user: 'dan', roles: ['access'], device: DEVICE }));
    for (const s of [alice, bob, onNode, withDevice]) monitor.register(s);
    await sleep(0);
    assert.equal(monitor.size, 4);

    await lock({ user: 'alice' }, 'incident 7');
    assert.equal(await alice.ended, 'lock targeting User:"alice" is in force: incident 7');
    assert.deepEqual(bob.calls, []);
    assert.equal(monitor.size, 3);

    // A node lock by hostname or by ID matches the session on that node.
    await lock({ node: NODE.hostname });
    assert.match(await onNode.ended, /Node:"web-1"/);
    await lock({ device: DEVICE.deviceId });
    assert.match(await withDevice.ended, /Device:"dev-1"/);
    await lock({ role: 'access' });
    assert.match(await bob.ended, /Role:"access"/);
    assert.equal(monitor.size, 0);
    assert.deepEqual(alice.calls.length, 1, 'end is called once');
  });

  test('the sessions one change ends are logged in one info line (each at debug)', async () => {
    const lines: { level: string; obj: object; msg?: string }[] = [];
    const record = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
    const logger: Logger = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const { checker, locks, lock } = await setUp();
    const monitor = new SessionMonitor({
      checker,
      clock: systemClock,
      logger,
      changes: [(fn) => locks.onChange(() => fn())],
    });
    opened.push(monitor);
    const three = [session(), session(), session()];
    for (const s of three) monitor.register(s);
    await sleep(0);
    await lock({ user: 'alice' }, 'incident 8');
    for (const s of three) await s.ended;
    const info = lines.filter((l) => l.level === 'info');
    assert.deepEqual(
      info.map((l) => [l.msg, l.obj]),
      [
        [
          'ended live sessions',
          { ended: [{ reason: 'lock targeting User:"alice" is in force: incident 8', sessions: 3 }] },
        ],
      ],
    );
    assert.equal(lines.filter((l) => l.level === 'debug' && l.msg === 'ending a live session').length, 3);
  });

  test('a node lock naming the ID ends a session registered with the hostname too', async () => {
    const { monitor, lock } = await setUp();
    const s = session(undefined, { login: 'root', ...nodeLockTargets(NODE) });
    monitor.register(s);
    await lock({ node: NODE.id });
    assert.match(await s.ended, new RegExp(NODE.id));
  });

  test('a session already locked when it registers is ended (no race with the decision)', async () => {
    const { monitor, lock, locks } = await setUp();
    const l = await lock({ user: 'alice' });
    await locks.waitForRev(Number(l.metadata.revision));
    const s = session();
    monitor.register(s);
    assert.match(await s.ended, /User:"alice"/);
  });

  test('unregistered sessions are left alone', async () => {
    const { monitor, lock } = await setUp();
    const s = session();
    const reg = monitor.register(s);
    reg.unregister();
    reg.unregister();
    await lock({ user: 'alice' });
    await sleep(20);
    assert.deepEqual(s.calls, []);
    assert.equal(monitor.size, 0);
  });

  test('certificate expiry ends the session, one timer per expiry instant', async () => {
    const { monitor } = await setUp();
    const at = new Date(Date.now() + 80);
    const a = session(makeIdentity({ user: 'alice', roles: ['access'], expires: at }));
    const b = session(makeIdentity({ user: 'bob', roles: ['access'], expires: at }));
    const later = session(
      makeIdentity({ user: 'carol', roles: ['access'], expires: new Date(Date.now() + 60_000) }),
    );
    for (const s of [a, b, later]) monitor.register(s);
    assert.equal(await a.ended, certificateExpiredMessage(at.getTime()));
    assert.equal(await b.ended, certificateExpiredMessage(at.getTime()));
    assert.deepEqual(later.calls, []);
    assert.equal(monitor.size, 1);
  });

  test('an already expired certificate ends at registration (fake clock)', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const { monitor } = await setUp(clock);
    const s = session(makeIdentity({ user: 'alice', roles: ['access'], expires: new Date(clock.now() - 1) }));
    monitor.register(s);
    assert.match(await s.ended, /certificate expired/);
  });

  test('strict mode: a lock view stale beyond the bound ends everything, with no polling tick', async () => {
    let mode = 'best_effort';
    const { monitor, locks } = await setUp(systemClock, () => ({
      deviceTrustMode: 'off',
      lockingMode: mode,
    }));
    const s = session();
    monitor.register(s);
    await sleep(0);
    locks.close(); // the watch breaks: stale from now on
    monitor.check();
    await sleep(300);
    assert.deepEqual(s.calls, [], 'best_effort keeps sessions on a stale view');
    mode = 'strict';
    monitor.check(); // a settings change arrives (the preference view's onChange)
    assert.equal(await s.ended, STALE_LOCK_VIEW);

    // A session that registers while strict and current is ended when the view goes stale.
    const { monitor: m2, locks: l2 } = await setUp(systemClock, () => ({
      deviceTrustMode: 'off',
      lockingMode: 'strict',
    }));
    const t = session();
    m2.register(t);
    await sleep(0);
    const started = performance.now();
    l2.close();
    assert.equal(await t.ended, STALE_LOCK_VIEW);
    const took = performance.now() - started;
    assert.ok(took >= 150, `ended only once the bound (200 ms) passed, took ${took} ms`);
  });

  test('strict mode with a bound of 0: no re-arm loop on a current view, and a stale view still ends sessions', async () => {
    const { checker, locks } = await setUp(
      systemClock,
      () => ({ deviceTrustMode: 'off', lockingMode: 'strict' }),
      0,
    );
    let reads = 0;
    const counted = {
      lockSweep: () => checker.lockSweep(),
      staleness: () => {
        reads++;
        return checker.staleness();
      },
    };
    const monitor = new SessionMonitor({ checker: counted, clock: systemClock, logger: quiet, changes: [] });
    opened.push(monitor);
    const s = session();
    monitor.register(s);
    const started = performance.now();
    await sleep(400);
    const window = performance.now() - started;
    assert.deepEqual(s.calls, [], 'a current view keeps the session');
    // Before the fix the timer re-armed every 1 ms (hundreds of reads in this window).
    const most = Math.ceil(window / MIN_STALENESS_CHECK_MS) + 3;
    assert.ok(reads <= most, `${reads} staleness reads in ${Math.round(window)} ms (at most ${most})`);
    const broke = performance.now();
    locks.close();
    assert.equal(await s.ended, STALE_LOCK_VIEW);
    const took = performance.now() - broke;
    assert.ok(took < 5_000, `ended ${Math.round(took)} ms after the view went stale`);
  });

  test('strict mode: a view that crosses the bound between a check and its re-arm still ends sessions', async () => {
    // The race seen in test/ssh-node/locks: a lock view goes unhealthy; the check its change
    // causes reads it 0 ms stale (within a bound of 0) and ends nothing; a millisecond later
    // the re-arm reads it 1 ms stale, past the bound. It must check again, not give up.
    let staleFor = 0;
    const racing = {
      lockSweep: () => {
        const at = staleFor;
        staleFor = 1; // the clock moves on right after this sweep
        return () =>
          at > 0 ? { code: 'WARDEN_ERR_LOCK_VIEW_STALE' as const, reason: STALE_LOCK_VIEW } : undefined;
      },
      staleness: () => ({ strict: true, staleForMs: staleFor, maxMs: 0 }),
    };
    keepAlive ??= setInterval(() => undefined, 1000);
    const monitor = new SessionMonitor({ checker: racing, clock: systemClock, logger: quiet, changes: [] });
    opened.push(monitor);
    const s = session();
    monitor.register(s);
    await sleep(0);
    staleFor = 0;
    monitor.check(); // the change: 0 ms stale, nothing ends
    assert.deepEqual(s.calls, [], 'the check within the bound ends nothing');
    assert.equal(await s.ended, STALE_LOCK_VIEW);
  });

  test('unknown cluster settings end sessions (fail closed)', async () => {
    let settings: ClusterSettings | undefined = { deviceTrustMode: 'off', lockingMode: 'best_effort' };
    const { monitor } = await setUp(systemClock, () => settings);
    const s = session();
    monitor.register(s);
    await sleep(0);
    assert.deepEqual(s.calls, []);
    settings = undefined;
    monitor.check();
    assert.match(await s.ended, /cluster settings/);
  });

  test('a throwing end() does not stop the others', async () => {
    const { monitor, lock } = await setUp();
    const bad = {
      ...session(),
      end: () => {
        throw new Error('boom');
      },
    };
    const good = session();
    monitor.register(bad);
    monitor.register(good);
    await lock({ role: 'access' });
    assert.match(await good.ended, /Role:"access"/);
    assert.equal(monitor.size, 0);
  });
});
