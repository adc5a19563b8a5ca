/**
 * The session monitor: every live session of every protocol (SSH at the proxy and at the
 * node, databases, and the coming apps and Kubernetes) registers here with its identity,
 * what it touches and how to end it. The monitor ends sessions, with a message, when
 *
 *   - a lock comes into force for them: the lock view's watch hands every stored lock to
 *     `lockStored()`, which finds the sessions it targets in an index of the live sessions by
 *     lock target (user, each role, login, device, node ID and hostname) — no pass over the
 *     other sessions, no polling interval — and ends them (see `lockStored` for the order).
 *     Other changes (a re-list of the view, new cluster settings) re-check every session at
 *     once (`check()`);
 *   - their certificate expires: one timer per distinct expiry instant;
 *   - `locking_mode: strict` and the lock view has been stale longer than the bound: one
 *     timer, set for the moment the view could first cross the bound (staleness grows no
 *     faster than time; at least `MIN_STALENESS_CHECK_MS` away), re-armed after each check;
 *     no timer outside strict mode.
 *
 *   lock written ─▶ backend watch ─▶ ResourceCache.onChange ─▶ monitor.lockStored(lock)
 *                                       index[lock's rarest target] ─▶ session.end("lock targeting …")
 *                                                                       (every one, in one pass)
 *
 * Protocols supply only `end(message)`: the SSH node writes the message to the terminal,
 * the database engines send a protocol error, the proxy cuts the tunnel. Modelled on
 * Teleport's lib/srv/monitor.go (one monitor per connection there, one for all here).
 * Internal to `access/`; the public surface is `access/index.ts`. Tested by
 * `session-monitor.test.ts`.
 *
 * One instance per process, built in the composition root (`bin/start.ts`) and handed to every
 * protocol's service.
 *
 * @example
 *   const monitor = liveSessionMonitor(views, { checker, clock, logger });
 *   const reg = monitor.register({ identity, targets: { login, ...nodeLockTargets(node) },
 *     protocol: 'ssh', end: (message) => session.terminate(message) });
 *   // … when the session ends on its own:
 *   reg.unregister();
 */
import { openSync, readSync } from 'node:fs';
import { LOCK_TARGET_FIELDS, type LockResource, type LockTargetField } from '@warden/api';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { AccessChecker, LockReason } from './check';
import { type Identity, lockTargets } from './identity';
import { isLockInForce, type LockTargets, lockMatches, lockMessage } from './locks';

/** One live session, as a protocol registers it. */
export interface MonitoredSession {
  identity: Identity;
  /** What the session touches beyond its identity: a login, a node (ID and hostname). */
  targets?: Omit<LockTargets, 'user' | 'roles' | 'device'>;
  /** For logs: `ssh`, `db`, `app`, `kube`. */
  protocol?: string;
  /**
   * Ends the session, showing `message` where the protocol can. Called at most once; the
   * session is unregistered before the call.
   */
  end(message: string, why: SessionEndReason): void;
}

/** Why the monitor ended a session. */
export type SessionEndReason = { kind: 'lock'; lock?: LockReason['lock'] } | { kind: 'expired' };

export interface Registration {
  /** Stops watching this session (it ended on its own). Idempotent. */
  unregister(): void;
}

/** Subscribes a listener to a live view's changes; returns the unsubscribe function. */
export type ChangeSource = (listener: () => void) => () => void;

/** A change of the lock view, as `ResourceCache<LockResource>.onChange` reports it. */
export type LockChange = { type: 'put'; value: LockResource } | { type: 'delete' } | { type: 'reset' };

/** Subscribes a listener to the lock view's changes; returns the unsubscribe function. */
export type LockChangeSource = (listener: (change: LockChange) => void) => () => void;

export interface SessionMonitorOptions {
  checker: Pick<AccessChecker, 'lockSweep' | 'staleness' | 'settings'>;
  clock: Clock;
  logger: Logger;
  /**
   * Views whose changes may end any session: the cluster settings (a switch to strict mode),
   * or a lock view given without its values. Each change re-checks every session at once.
   */
  changes: readonly ChangeSource[];
  /**
   * The lock view's changes with their values: a stored lock ends the sessions it targets,
   * found through the index (`lockStored`); a re-list re-checks every session.
   */
  lockChanges?: LockChangeSource;
}

interface Entry {
  session: MonitoredSession;
  expiresAt: number | undefined;
  live: boolean;
  /** What the session presents to locks (identity and targets), computed once. */
  targets: LockTargets;
  /** Its keys in the index (`targetKeys`). */
  keys: readonly string[];
}

/** The index key of one lock target value (`user:alice`, `node:web-1`; no field has a colon). */
function targetKey(field: LockTargetField, value: string): string {
  return `${field}:${value}`;
}

/** Every index key a session's lock targets present (one per role, per node name). */
export function targetKeys(t: LockTargets): string[] {
  const keys: string[] = [];
  if (t.user !== undefined) keys.push(targetKey('user', t.user));
  for (const role of new Set(t.roles ?? [])) keys.push(targetKey('role', role));
  if (t.login !== undefined) keys.push(targetKey('login', t.login));
  const nodes = t.node === undefined ? [] : typeof t.node === 'string' ? [t.node] : t.node;
  for (const node of new Set(nodes)) keys.push(targetKey('node', node));
  if (t.device !== undefined) keys.push(targetKey('device', t.device));
  return keys;
}

const round2 = (ms: number) => Math.round(ms * 100) / 100;

/** `/proc/thread-self/schedstat` of the thread that first asked, kept open; null: none here. */
let schedstatFd: number | null | undefined;
const schedstatBuf = Buffer.alloc(96);

/**
 * This thread's time on a core and waiting for one (ns), from Linux's
 * `/proc/thread-self/schedstat` (read at offset 0, which regenerates it); undefined elsewhere.
 * Read around a lock's pass, it tells a pass that was slow from one whose thread waited behind
 * other processes. Only the main thread calls it (the monitor runs there).
 */
function threadSched(): { runNs: number; waitNs: number } | undefined {
  try {
    schedstatFd ??= openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    schedstatFd = null;
  }
  if (schedstatFd === null) return undefined;
  try {
    const n = readSync(schedstatFd, schedstatBuf, 0, schedstatBuf.length, 0);
    const [run, wait] = schedstatBuf.toString('latin1', 0, n).split(' ').map(Number);
    return run !== undefined && wait !== undefined && Number.isFinite(run) && Number.isFinite(wait)
      ? { runNs: run, waitNs: wait }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Node timers overflow past 2^31-1 ms (~24.8 days): longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The staleness timer's shortest wait: with a bound shorter than this (0: "stale at once"),
 * sessions end at most this much later than the view crossed it.
 */
export const MIN_STALENESS_CHECK_MS = 100;

/** The message a session ended by certificate expiry shows. */
export function certificateExpiredMessage(expiresAt: number): string {
  return `your certificate expired at ${new Date(expiresAt).toISOString()}; run \`wsh login\` to get a new one`;
}

export class SessionMonitor {
  readonly #o: SessionMonitorOptions;
  readonly #entries = new Set<Entry>();
  /** Live sessions by lock target key: a lock finds its sessions here, not by a pass over all. */
  readonly #index = new Map<string, Set<Entry>>();
  /** Sessions by certificate expiry instant, with that instant's single timer. */
  readonly #expiries = new Map<number, { entries: Set<Entry>; timer: NodeJS.Timeout }>();
  readonly #unsubscribe: (() => void)[];
  #staleTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: SessionMonitorOptions) {
    this.#o = o;
    this.#unsubscribe = o.changes.map((subscribe) => subscribe(() => this.check()));
    if (o.lockChanges) {
      this.#unsubscribe.push(
        o.lockChanges((change) => {
          if (change.type === 'put') this.lockStored(change.value);
          else if (change.type === 'reset') this.check();
          // A removed lock ends nothing; the view may have turned unhealthy (strict mode).
          else this.#armStaleness();
        }),
      );
    }
  }

  /** Live sessions watched. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The live sessions `lock` targets, from the index: the sessions under the lock's rarest
   * target value, those matching every target the lock sets. Whether the lock is in force
   * is not asked.
   */
  targetedBy(lock: LockResource): MonitoredSession[] {
    return this.#targeted(lock).map((e) => e.session);
  }

  /**
   * Watches a session until it ends. A session that is already locked out or expired when it
   * registers is ended right after this call returns (in a microtask), so a lock that arrived
   * between the access decision and the registration is not missed.
   */
  register(session: MonitoredSession): Registration {
    const expires = session.identity.expires?.getTime();
    const targets = lockTargets(session.identity, session.targets);
    const entry: Entry = {
      session,
      expiresAt: expires !== undefined && Number.isFinite(expires) ? expires : undefined,
      live: !this.#closed,
      targets,
      keys: targetKeys(targets),
    };
    if (this.#closed) {
      queueMicrotask(() =>
        this.#end(entry, 'the service is shutting down', { kind: 'lock' }, { force: true }),
      );
      return { unregister: () => undefined };
    }
    this.#entries.add(entry);
    for (const key of entry.keys) {
      const set = this.#index.get(key);
      if (set) set.add(entry);
      else this.#index.set(key, new Set([entry]));
    }
    if (entry.expiresAt !== undefined) this.#armExpiry(entry);
    queueMicrotask(() => {
      if (!entry.live) return;
      this.#checkOne(entry, this.#o.checker.lockSweep());
      this.#armStaleness();
    });
    return { unregister: () => this.#remove(entry) };
  }

  /**
   * Re-checks every session now (called on every change of the watched views). The sessions
   * a change ends are logged in one line (each at debug level): a lock can end a thousand, and
   * a line each, written synchronously, would delay the others' ends.
   */
  check(): void {
    if (this.#closed) return;
    if (this.#entries.size > 0) {
      const sweep = this.#o.checker.lockSweep();
      const ended = new Map<string, number>();
      for (const entry of [...this.#entries]) {
        const reason = this.#checkOne(entry, sweep, 'debug');
        if (reason !== undefined) ended.set(reason, (ended.get(reason) ?? 0) + 1);
      }
      if (ended.size > 0) {
        this.#o.logger.info(
          { ended: [...ended].map(([reason, sessions]) => ({ reason, sessions })) },
          'ended live sessions',
        );
      }
    }
    this.#armStaleness();
  }

  /**
   * A lock was stored (the lock view's watch delivered it): ends the sessions it targets, found
   * through the index, with its message. While the lock view cannot be trusted or the cluster
   * settings are unknown, every session is re-checked instead (`check()` ends them all: fail
   * closed).
   *
   * Every targeted session is ended in one synchronous pass, in registration order, without a
   * turn of the event loop in between: each protocol's `end` writes its message to the
   * client's own socket (the SSH node's sessions too: the proxy hands this process's node the
   * client's TLS socket) and defers the rest of its teardown (hang-ups, the database's own
   * connection) until after the pass, so a turn would only let the teardown of the sessions
   * ended first run before the others were told. One log line for the pass.
   */
  lockStored(lock: LockResource): void {
    if (this.#closed) return;
    const s = this.#o.checker.staleness();
    if (!this.#o.checker.settings() || (s.strict && !(s.staleForMs <= s.maxMs))) {
      this.check();
      return;
    }
    this.#armStaleness();
    if (this.#entries.size === 0 || !isLockInForce(lock, this.#o.clock.now())) return;
    const targeted = this.#targeted(lock);
    if (targeted.length === 0) return;
    const message = lockMessage(lock);
    const why: SessionEndReason = { kind: 'lock', lock };
    const start = performance.now();
    const cpu = process.cpuUsage();
    const sched = threadSched();
    // How long the lock took to reach this process (its writer's clock against ours).
    const age = this.#o.clock.now() - Date.parse(lock.spec.created_at ?? '');
    // When each end was done, from the pass's start (ms): this process's side of the latency.
    const endsAt: number[] = [];
    for (const entry of targeted) {
      // A session ended by another's end (the proxy's tunnel of a node session) is skipped.
      if (!entry.live) continue;
      this.#end(entry, message, why, { log: 'debug' });
      endsAt.push(performance.now() - start);
    }
    const ended = endsAt.length;
    if (ended === 0) return;
    const used = process.cpuUsage(cpu);
    const schedAfter = sched && threadSched();
    // The lock's age when the ends were done (in pass order, so already sorted).
    const endAge = (q: number) => Math.round(age + endsAt[Math.max(0, Math.ceil(q * ended) - 1)]!);
    this.#o.logger.info(
      {
        ended: [{ reason: message, sessions: ended }],
        // What the pass cost, and when it began: to tell a slow pass from a late one (not
        // named pass_*: the logger redacts fields that look like passwords).
        sweep_ms: round2(performance.now() - start),
        sweep_cpu_ms: round2((used.user + used.system) / 1000),
        // The main thread's wait for a core during the pass (Linux): wall ≈ its CPU + this.
        ...(sched && schedAfter ? { sweep_wait_ms: round2((schedAfter.waitNs - sched.waitNs) / 1e6) } : {}),
        ...(Number.isFinite(age)
          ? {
              lock_age_ms: age,
              // The lock's age when this process had ended half, 99 % and all of the sessions
              // (the end written to the client's socket): what a client on its own machine
              // would see, less the network.
              end_age_p50_ms: endAge(0.5),
              end_age_p99_ms: endAge(0.99),
              end_age_max_ms: endAge(1),
            }
          : {}),
      },
      'ended live sessions',
    );
  }

  /** Stops watching (sessions are left to their services' own shutdown). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const u of this.#unsubscribe) u();
    if (this.#staleTimer) clearTimeout(this.#staleTimer);
    for (const { timer } of this.#expiries.values()) clearTimeout(timer);
    this.#expiries.clear();
    for (const e of this.#entries) e.live = false;
    this.#entries.clear();
    this.#index.clear();
  }

  /** Ends the session if it must end now; returns the message it ended with. */
  #checkOne(
    entry: Entry,
    sweep: ReturnType<AccessChecker['lockSweep']>,
    log: 'info' | 'debug' = 'info',
  ): string | undefined {
    if (!entry.live) return undefined;
    const now = this.#o.clock.now();
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
      const message = certificateExpiredMessage(entry.expiresAt);
      this.#end(entry, message, { kind: 'expired' }, { log });
      return message;
    }
    const why = sweep(entry.session.identity, entry.session.targets);
    if (!why) return undefined;
    this.#end(entry, why.reason, why.lock ? { kind: 'lock', lock: why.lock } : { kind: 'lock' }, { log });
    return why.reason;
  }

  #end(
    entry: Entry,
    message: string,
    why: SessionEndReason,
    o: { force?: boolean; log?: 'info' | 'debug' } = {},
  ): void {
    if (!entry.live && !o.force) return;
    this.#remove(entry);
    const s = entry.session;
    this.#o.logger[o.log ?? 'info'](
      { user: s.identity.user, protocol: s.protocol, reason: message },
      'ending a live session',
    );
    try {
      s.end(message, why);
    } catch (e) {
      this.#o.logger.error({ err: e, protocol: s.protocol }, 'ending a session failed');
    }
  }

  /** The live entries `lock` targets (see `targetedBy`), in registration order. */
  #targeted(lock: LockResource): Entry[] {
    let smallest: Set<Entry> | undefined;
    for (const field of LOCK_TARGET_FIELDS) {
      const value = lock.spec.target[field];
      if (value === undefined) continue;
      const set = this.#index.get(targetKey(field, value));
      if (!set) return [];
      if (!smallest || set.size < smallest.size) smallest = set;
    }
    if (!smallest) return [];
    const out: Entry[] = [];
    for (const entry of smallest) if (lockMatches(lock, entry.targets)) out.push(entry);
    return out;
  }

  #remove(entry: Entry): void {
    if (!entry.live) return;
    entry.live = false;
    this.#entries.delete(entry);
    for (const key of entry.keys) {
      const set = this.#index.get(key);
      if (!set) continue;
      set.delete(entry);
      if (set.size === 0) this.#index.delete(key);
    }
    if (entry.expiresAt === undefined) return;
    const slot = this.#expiries.get(entry.expiresAt);
    if (!slot) return;
    slot.entries.delete(entry);
    if (slot.entries.size === 0) {
      clearTimeout(slot.timer);
      this.#expiries.delete(entry.expiresAt);
    }
  }

  /** One timer per expiry instant, shared by every session whose certificate expires then. */
  #armExpiry(entry: Entry): void {
    const at = entry.expiresAt!;
    const slot = this.#expiries.get(at);
    if (slot) {
      slot.entries.add(entry);
      return;
    }
    const entries = new Set([entry]);
    const arm = (): NodeJS.Timeout => {
      const wait = Math.max(0, at - this.#o.clock.now());
      const timer = setTimeout(
        () => {
          if (at - this.#o.clock.now() > 0 && wait >= MAX_TIMER_MS) {
            const s = this.#expiries.get(at);
            if (s) s.timer = arm();
            return;
          }
          this.#expiries.delete(at);
          for (const e of entries) this.#end(e, certificateExpiredMessage(at), { kind: 'expired' });
        },
        Math.min(wait, MAX_TIMER_MS),
      );
      timer.unref();
      return timer;
    };
    this.#expiries.set(at, { entries, timer: arm() });
  }

  /**
   * In strict mode, one timer for the moment the lock view could first be stale beyond the
   * bound; none outside strict mode or with no sessions (a change of the settings re-arms).
   * A current view can only cross the bound `maxMs` from now, so a small bound would re-arm
   * almost at once, forever (1 ms apart with `lockMaxStalenessMs: 0`): the timer waits at
   * least `MIN_STALENESS_CHECK_MS`, and a tick that finds the view within the bound only
   * re-arms (one `staleness()` read, no sweep of the sessions).
   */
  #armStaleness(): void {
    if (this.#staleTimer) clearTimeout(this.#staleTimer);
    this.#staleTimer = undefined;
    if (this.#closed || this.#entries.size === 0) return;
    const s = this.#o.checker.staleness();
    if (!s.strict) return;
    const left = s.maxMs - s.staleForMs;
    // Past the bound already (the view may have crossed it since the check that called us,
    // which then ended nothing): check again at once. That check ends every session, so
    // this does not repeat.
    const wait = !(left >= 0) ? 0 : Math.min(Math.max(left + 1, MIN_STALENESS_CHECK_MS), MAX_TIMER_MS);
    this.#staleTimer = setTimeout(() => this.#staleTick(), wait);
    this.#staleTimer.unref();
  }

  #staleTick(): void {
    this.#staleTimer = undefined;
    const s = this.#o.checker.staleness();
    if (s.strict && !(s.staleForMs <= s.maxMs)) this.check();
    else this.#armStaleness();
  }
}

/**
 * The process's SessionMonitor over live views shaped like `Services.accessViews()`: a lock
 * stored ends the sessions it targets (found through the index); a re-list of the lock view
 * or a change of the cluster settings (a switch to strict mode) re-checks every session.
 *
 * @example
 *   const views = services.accessViews({ logger }); await views.start();
 *   const checker = liveAccessChecker(views, { clock });
 *   const monitor = liveSessionMonitor(views, { checker, clock, logger });
 */
export function liveSessionMonitor(
  views: {
    locks: { onChange(listener: (change: LockChange) => void): () => void };
    preference: { onChange(listener: () => void): () => void };
  },
  o: Omit<SessionMonitorOptions, 'changes' | 'lockChanges'>,
): SessionMonitor {
  return new SessionMonitor({
    ...o,
    changes: [(l) => views.preference.onChange(() => l())],
    lockChanges: (l) => views.locks.onChange(l),
  });
}
