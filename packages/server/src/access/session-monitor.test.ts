import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type LockResource, presetRoles, type RoleResource } from '@warden/api';
import { MemoryBackend } from '../backend';
import { type Clock, FakeClock, systemClock } from '../clock';
import type { Logger } from '../log';
import { createServices } from '../services';
import { AccessChecker, type ClusterSettings, STALE_LOCK_VIEW } from './check';
import { lockTargets, makeIdentity, nodeLockTargets } from './identity';
import { lockMatches } from './locks';
import {
  certificateExpiredMessage,
  MIN_STALENESS_CHECK_MS,
  SessionMonitor,
  targetKeys,
} from './session-monitor';

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
      changes: [],
      lockChanges: (fn) => locks.onChange(fn),
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
      settings: () => checker.settings(),
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
      settings: () => ({ deviceTrustMode: 'off', lockingMode: 'strict' }),
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

/** A lock resource as the view delivers it (not stored: the index tests need no backend). */
function lockOf(
  target: LockResource['spec']['target'],
  extra: Partial<LockResource['spec']> = {},
): LockResource {
  return {
    kind: 'lock',
    version: 'v2',
    metadata: { name: crypto.randomUUID() },
    spec: { target, ...extra },
  } as LockResource;
}

describe('SessionMonitor: the index of live sessions by lock target', { timeout: 60_000 }, () => {
  const settings: ClusterSettings = { deviceTrustMode: 'off', lockingMode: 'best_effort' };
  /** A monitor over an empty, current lock view (locks arrive through `lockStored`). */
  function bare(o: { settings?: () => ClusterSettings | undefined; logger?: Logger } = {}) {
    const checker = new AccessChecker({
      clock: systemClock,
      locks: { values: () => [], staleForMs: () => 0 },
      role: (n) => presets[n],
      clusterSettings: o.settings ?? (() => settings),
    });
    return new SessionMonitor({ checker, clock: systemClock, logger: o.logger ?? quiet, changes: [] });
  }

  test('targetKeys: one key per user, role, login, node name and device', () => {
    assert.deepEqual(
      targetKeys({
        user: 'alice',
        roles: ['access', 'editor', 'access'],
        login: 'root',
        node: [NODE.id, NODE.hostname],
        device: 'dev-1',
      }),
      [
        'user:alice',
        'role:access',
        'role:editor',
        'login:root',
        `node:${NODE.id}`,
        'node:web-1',
        'device:dev-1',
      ],
    );
    assert.deepEqual(targetKeys({ user: 'bob', node: 'web-2' }), ['user:bob', 'node:web-2']);
  });

  test('a lock finds exactly the sessions it targets (the index agrees with matching every session)', () => {
    const monitor = bare();
    // A deterministic spread of identities and targets, with shared and distinct values.
    let seed = 7;
    const pick = <T>(xs: readonly T[]): T => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return xs[seed % xs.length]!;
    };
    const users = ['alice', 'bob', 'carol', 'dan'];
    const roles = ['access', 'editor', 'auditor', 'gone'];
    const devices = [undefined, 'dev-1', 'dev-2'];
    const nodes = [undefined, NODE, { id: 'f0e1d2c3-0000-4000-8000-000000000002', hostname: 'db-1' }];
    const logins = [undefined, 'root', 'alice'];
    const sessions = Array.from({ length: 300 }, () => {
      const device = pick(devices);
      const node = pick(nodes);
      const login = pick(logins);
      return session(
        makeIdentity({
          user: pick(users),
          roles: [...new Set([pick(roles), pick(roles)])],
          ...(device ? { device: { ...DEVICE, deviceId: device } } : {}),
        }),
        { ...(login ? { login } : {}), ...(node ? nodeLockTargets(node) : {}) },
      );
    });
    for (const s of sessions) monitor.register(s);
    const locks = [
      ...users.map((user) => lockOf({ user })),
      ...roles.map((role) => lockOf({ role })),
      lockOf({ device: 'dev-1' }),
      lockOf({ device: 'dev-3' }),
      lockOf({ node: NODE.id }),
      lockOf({ node: 'db-1' }),
      lockOf({ login: 'root' }),
      lockOf({ user: 'alice', login: 'root' }),
      lockOf({ user: 'bob', role: 'editor', node: NODE.hostname }),
      lockOf({ role: 'auditor', device: 'dev-2' }),
      lockOf({ user: 'nobody' }),
    ];
    for (const lock of locks) {
      const want = sessions.filter((s) => lockMatches(lock, lockTargets(s.identity, s.targets)));
      const got = monitor.targetedBy(lock);
      assert.deepEqual(
        new Set(got),
        new Set(want),
        `lock on ${JSON.stringify(lock.spec.target)}: ${got.length} found, ${want.length} targeted`,
      );
      assert.equal(got.length, want.length);
    }
    // The spread covers both cases for the single-field locks.
    assert.ok(monitor.targetedBy(locks[0]!).length > 0);
    assert.ok(monitor.targetedBy(locks[0]!).length < sessions.length);
    monitor.close();
  });

  test('a session that ends, or is replaced with a changed identity, leaves the index', async () => {
    const monitor = bare();
    const onDev1 = session(makeIdentity({ user: 'alice', roles: ['access'], device: DEVICE }), {
      login: 'root',
      ...nodeLockTargets(NODE),
    });
    const other = session(makeIdentity({ user: 'bob', roles: ['access'] }));
    const reg = monitor.register(onDev1);
    monitor.register(other);
    const byDevice = lockOf({ device: 'dev-1' });
    const byNode = lockOf({ node: NODE.hostname });
    assert.deepEqual(monitor.targetedBy(byDevice), [onDev1]);
    assert.deepEqual(monitor.targetedBy(byNode), [onDev1]);

    // Ended on its own: under none of its keys any more.
    reg.unregister();
    assert.deepEqual(monitor.targetedBy(byDevice), []);
    assert.deepEqual(monitor.targetedBy(byNode), []);
    assert.deepEqual(monitor.targetedBy(lockOf({ user: 'alice' })), []);
    assert.deepEqual(monitor.targetedBy(lockOf({ role: 'access' })), [other]);

    // Its identity changed (a web session became device-trusted on another device): the
    // protocol unregisters and registers again; the old device no longer finds it.
    const moved = session(
      makeIdentity({ user: 'alice', roles: ['access'], device: { ...DEVICE, deviceId: 'dev-2' } }),
    );
    monitor.register(moved);
    assert.deepEqual(monitor.targetedBy(byDevice), []);
    assert.deepEqual(monitor.targetedBy(lockOf({ device: 'dev-2' })), [moved]);

    // Ended by a lock: gone from the index too, and not ended twice by a second lock.
    monitor.lockStored(lockOf({ user: 'alice' }, { message: 'incident 9' }));
    assert.equal(await moved.ended, 'lock targeting User:"alice" is in force: incident 9');
    assert.deepEqual(monitor.targetedBy(lockOf({ device: 'dev-2' })), []);
    monitor.lockStored(lockOf({ device: 'dev-2' }));
    assert.deepEqual(moved.calls.length, 1);
    assert.deepEqual(other.calls, []);
    assert.equal(monitor.size, 1);
    monitor.close();
    assert.deepEqual(monitor.targetedBy(lockOf({ user: 'bob' })), [], 'close empties the index');
  });

  test('a stored lock that is not in force (expired) ends nothing', () => {
    const monitor = bare();
    const s = session();
    monitor.register(s);
    monitor.lockStored(lockOf({ user: 'alice' }, { expires: new Date(Date.now() - 1000).toISOString() }));
    assert.deepEqual(s.calls, []);
    assert.equal(monitor.size, 1);
    monitor.close();
  });

  test('unknown cluster settings: a stored lock ends every session, not only its targets (fail closed)', async () => {
    let known = true;
    const monitor = bare({ settings: () => (known ? settings : undefined) });
    const alice = session();
    const bob = session(makeIdentity({ user: 'bob', roles: ['access'] }));
    monitor.register(alice);
    monitor.register(bob);
    await sleep(0);
    known = false;
    monitor.lockStored(lockOf({ user: 'alice' }));
    assert.match(await bob.ended, /cluster settings/);
    assert.match(await alice.ended, /cluster settings/);
  });

  test('a lock ends every session it targets in one pass, in registration order, before lockStored returns', async () => {
    const monitor = bare();
    const order: string[] = [];
    /** A session whose end costs 1 ms of CPU (a protocol writing its message). */
    const costly = (name: string, identity = makeIdentity({ user: 'alice', roles: ['access'] })) => ({
      ...session(identity),
      end() {
        const until = performance.now() + 1;
        while (performance.now() < until) {}
        order.push(name);
      },
    });
    const n = 40;
    for (let i = 0; i < n; i++) {
      monitor.register(costly(`alice-${i}`));
      monitor.register(costly(`bob-${i}`, makeIdentity({ user: 'bob', roles: ['access'] })));
    }
    await sleep(0);
    let loopRan = false;
    setImmediate(() => {
      loopRan = true;
    });
    monitor.lockStored(lockOf({ user: 'alice' }));
    // No turn of the event loop between two ends: a turn would let the teardown of the
    // sessions ended first run before the others were told.
    assert.equal(loopRan, false);
    assert.deepEqual(
      order,
      Array.from({ length: n }, (_, i) => `alice-${i}`),
    );
    assert.equal(monitor.size, n, "bob's sessions stay");
    monitor.close();
  });

  test("the pass logs one line: how many ended, what the pass cost, its wait for a core, and the lock's age when it began", async () => {
    const infos: Record<string, unknown>[] = [];
    const monitor = bare({ logger: { ...quiet, info: (o) => infos.push(o as Record<string, unknown>) } });
    for (let i = 0; i < 3; i++) monitor.register(session());
    await sleep(0);
    const createdAt = new Date(Date.now() - 40).toISOString();
    monitor.lockStored(lockOf({ user: 'alice' }, { created_at: createdAt, message: 'm' }));
    assert.equal(infos.length, 1);
    const line = infos[0]!;
    assert.deepEqual(line.ended, [{ reason: 'lock targeting User:"alice" is in force: m', sessions: 3 }]);
    assert.ok(typeof line.sweep_ms === 'number' && line.sweep_ms >= 0, `sweep_ms ${line.sweep_ms}`);
    assert.ok(
      typeof line.sweep_cpu_ms === 'number' && line.sweep_cpu_ms >= 0,
      `sweep_cpu_ms ${line.sweep_cpu_ms}`,
    );
    assert.ok(
      typeof line.lock_age_ms === 'number' && line.lock_age_ms >= 40,
      `lock_age_ms ${line.lock_age_ms}`,
    );
    // The lock's age when half, 99 % and all of the sessions had been ended (here at once).
    for (const f of ['end_age_p50_ms', 'end_age_p99_ms', 'end_age_max_ms'])
      assert.ok(typeof line[f] === 'number' && (line[f] as number) >= 40, `${f} ${line[f]}`);
    assert.ok((line.end_age_p50_ms as number) <= (line.end_age_max_ms as number));
    // On Linux, the main thread's wait for a core during the pass (from its schedstat).
    if (process.platform === 'linux')
      assert.ok(
        typeof line.sweep_wait_ms === 'number' && line.sweep_wait_ms >= 0,
        `sweep_wait_ms ${line.sweep_wait_ms}`,
      );
    // A lock ending nothing logs nothing.
    monitor.lockStored(lockOf({ user: 'nobody' }));
    assert.equal(infos.length, 1);
    monitor.close();
  });

  test("the pass's end ages follow the pass: the sessions ended last are logged as ended later", async () => {
    const infos: Record<string, unknown>[] = [];
    const monitor = bare({ logger: { ...quiet, info: (o) => infos.push(o as Record<string, unknown>) } });
    // Four sessions; ending the third takes 30 ms (a slow protocol), so half are ended at once
    // and the last two only after it.
    for (let i = 0; i < 4; i++) {
      const s = session();
      const end = s.end.bind(s);
      monitor.register({
        ...s,
        end: (m: string) => {
          if (i === 2) {
            const until = performance.now() + 30;
            while (performance.now() < until);
          }
          end(m);
        },
      });
    }
    await sleep(0);
    monitor.lockStored(lockOf({ user: 'alice' }, { created_at: new Date().toISOString(), message: 'm' }));
    const line = infos[0]!;
    const p50 = line.end_age_p50_ms as number;
    const max = line.end_age_max_ms as number;
    assert.ok(max - p50 >= 25, `p50 ${p50} ms, max ${max} ms`);
    assert.equal(line.end_age_p99_ms, max, 'p99 of four ends is the last');
    monitor.close();
  });
});
