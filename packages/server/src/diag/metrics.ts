/**
 * Warden's Prometheus metrics, in one registry per process (made by `bin/`, passed down; no
 * module-level singleton). Most counts need no code at their source: `instrumentAudit` counts
 * logins, ceremonies, sessions and access decisions from the audit events every service
 * already emits, `instrumentBackend` times every backend call, `watchLockLag` measures how
 * long a new lock took to reach this process's lock view.
 *
 * For code that has something to count and no audit event for it (a protocol whose sessions
 * are not audited yet), the `Metrics` methods are the API: `metrics.sessionStarted('kube')`.
 * Do not call them for what is audited too, or it is counted twice.
 *
 * Who may import: `bin/` creates the registry; services take a `Metrics` (default
 * `noopMetrics`). Tested by metrics.test.ts and test/diag.e2e.test.ts.
 */
import { type AuditEvent, type AuditEventInput, isAuditEventType } from '@warden/api';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { AuditLog, AuditStatementBase, AuditStatementWriter } from '../audit';
import type { Backend } from '../backend';

export type Outcome = 'success' | 'failure';

/** What other code may count. Labels are short, fixed words (never user input). */
export interface Metrics {
  /** A password/OTP login finished. */
  login(outcome: Outcome): void;
  /** A ceremony finished: `signup`, `device_enroll`, `device_authn`. */
  ceremony(name: string, outcome: Outcome): void;
  /** A session to a resource started; `protocol` is `ssh`, `postgres`, `mysql`, `app`, `kube`… */
  sessionStarted(protocol: string): void;
  /** The access checker decided (`allowed` or `denied`) for a protocol. */
  accessDecision(protocol: string, outcome: 'allowed' | 'denied'): void;
  /** One backend call took `seconds`. */
  backendCall(op: string, seconds: number): void;
  /** One audit event took `seconds` to store. */
  auditEmit(seconds: number): void;
  /** The audit log did not take an event of this type (the operation was refused or ended). */
  auditWriteFailure(type: string): void;
  /** A lock reached this process's lock view `seconds` after it was created. */
  lockLag(seconds: number): void;
}

/** Metrics that count nothing (tests, and services built without a registry). */
export const noopMetrics: Metrics = {
  login() {},
  ceremony() {},
  sessionStarted() {},
  accessDecision() {},
  backendCall() {},
  auditEmit() {},
  auditWriteFailure() {},
  lockLag() {},
};

export interface MetricsRegistry extends Metrics {
  /** The Prometheus text exposition of every metric. */
  render(): Promise<string>;
  readonly contentType: string;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** How often the event-loop delay is sampled (ms): each sample is a wake-up of the process. */
export const EVENT_LOOP_SAMPLE_MS = 100;
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

/**
 * A registry with Warden's metrics and Node's process metrics (`process_*`, `nodejs_*`).
 *
 * @example
 *   const metrics = createMetrics();
 *   metrics.sessionStarted('kube');
 *   res.end(await metrics.render());
 */
export function createMetrics(): MetricsRegistry {
  const registry = new Registry();
  // The event-loop delay histogram (`nodejs_eventloop_lag_*`) samples with a native timer at
  // this interval; prom-client's default of 10 ms woke an idle warden 100 times a second. At
  // 100 ms every stall of 100 ms or more is still recorded (shorter ones by chance).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];
  const logins = new Counter({
    name: 'warden_logins_total',
    help: 'Password/OTP logins by outcome',
    labelNames: ['outcome'],
    registers,
  });
  const ceremonies = new Counter({
    name: 'warden_ceremonies_total',
    help: 'Signup and device trust ceremonies by name and outcome',
    labelNames: ['ceremony', 'outcome'],
    registers,
  });
  const sessions = new Counter({
    name: 'warden_sessions_total',
    help: 'Sessions started, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const decisions = new Counter({
    name: 'warden_access_decisions_total',
    help: 'Access checker decisions by protocol and outcome',
    labelNames: ['protocol', 'outcome'],
    registers,
  });
  const backend = new Histogram({
    name: 'warden_backend_request_duration_seconds',
    help: 'Latency of backend calls, by operation',
    labelNames: ['op'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const audit = new Histogram({
    name: 'warden_audit_emit_duration_seconds',
    help: 'Latency of storing one audit event',
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const auditFailures = new Counter({
    name: 'warden_audit_write_failures_total',
    help: 'Audit events the audit log did not take, by event type; each refused or ended the operation it recorded',
    labelNames: ['type'],
    registers,
  });
  const lag = new Histogram({
    name: 'warden_lock_enforcement_lag_seconds',
    help: "Time from a lock's creation until this process's lock view (which every session check reads) holds it",
    buckets: LAG_BUCKETS,
    registers,
  });
  // Every label combination users look for exists from the start (at 0), so rate() works and
  // dashboards show zero rather than "no data".
  for (const outcome of ['success', 'failure']) logins.inc({ outcome }, 0);
  auditFailures.inc({ type: 'user.login' }, 0);
  return {
    login: (outcome) => logins.inc({ outcome }),
    ceremony: (ceremony, outcome) => ceremonies.inc({ ceremony, outcome }),
    sessionStarted: (protocol) => sessions.inc({ protocol }),
    accessDecision: (protocol, outcome) => decisions.inc({ protocol, outcome }),
    backendCall: (op, seconds) => backend.observe({ op }, seconds),
    auditEmit: (seconds) => audit.observe(seconds),
    auditWriteFailure: (type) => auditFailures.inc({ type: isAuditEventType(type) ? type : 'unknown' }),
    lockLag: (seconds) => lag.observe(Math.max(0, seconds)),
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

const CEREMONIES: Record<string, string> = {
  'user.signup': 'signup',
  'device.enroll': 'device_enroll',
  'device.authenticate': 'device_authn',
};

/** Counts what one stored audit event says happened. */
export function countAuditEvent(metrics: Metrics, event: AuditEvent | AuditEventInput): void {
  const e = event as { type: string; success?: boolean; protocol?: unknown };
  const outcome: Outcome = e.success === false ? 'failure' : 'success';
  const protocol = typeof e.protocol === 'string' && e.protocol ? e.protocol : 'unknown';
  switch (e.type) {
    case 'user.login':
      metrics.login(outcome);
      break;
    case 'session.start':
      if (outcome === 'success') metrics.sessionStarted(protocol);
      break;
    case 'access.allowed':
      metrics.accessDecision(protocol, 'allowed');
      break;
    case 'access.denied':
      metrics.accessDecision(protocol, 'denied');
      break;
    default: {
      const ceremony = CEREMONIES[e.type];
      if (ceremony) metrics.ceremony(ceremony, outcome);
    }
  }
}

/**
 * An AuditLog that times each emit, counts the stored events (`countAuditEvent`) and the
 * ones the store refused (`warden_audit_write_failures_total`); search and close pass through.
 */
export function instrumentAudit(audit: AuditLog, metrics: Metrics): AuditLog {
  return {
    async emit(input) {
      const started = performance.now();
      try {
        const event = await audit.emit(input);
        countAuditEvent(metrics, event);
        return event;
      } catch (e) {
        metrics.auditWriteFailure(input.type);
        throw e;
      } finally {
        metrics.auditEmit((performance.now() - started) / 1000);
      }
    },
    ...(audit.statements
      ? {
          statements(base: AuditStatementBase) {
            const inner = audit.statements!(base);
            if (!inner) return undefined;
            return {
              write(statement, done) {
                const started = performance.now();
                inner.write(statement, (e) => {
                  if (e !== undefined) metrics.auditWriteFailure('db.query');
                  metrics.auditEmit((performance.now() - started) / 1000);
                  done(e);
                });
              },
            } satisfies AuditStatementWriter;
          },
        }
      : {}),
    search: (query) => audit.search(query),
    close: () => audit.close(),
  };
}

const TIMED: ReadonlySet<PropertyKey> = new Set([
  'get',
  'range',
  'create',
  'put',
  'compareAndSwap',
  'delete',
  'deleteRange',
  'currentRev',
  'compact',
]);

/**
 * The same backend, with every data call timed into `warden_backend_request_duration_seconds`.
 * A Proxy, so `instanceof` and extra members (a PostgreSQL backend's `target`) still work;
 * methods run on the real object (its private fields).
 */
export function instrumentBackend<B extends Backend>(backend: B, metrics: Metrics): B {
  return new Proxy(backend, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (!TIMED.has(prop)) return value.bind(target);
      return async (...args: unknown[]) => {
        const started = performance.now();
        try {
          return await value.apply(target, args);
        } finally {
          metrics.backendCall(String(prop), (performance.now() - started) / 1000);
        }
      };
    },
  });
}

/** The lock view as `watchLockLag` needs it (a `ResourceCache` of locks). */
export interface LockChanges {
  onChange(
    listener: (change: { type: string; key?: string; value?: { spec?: { created_at?: string } } }) => void,
  ): () => void;
}

/**
 * Observes, for each new lock that arrives in `view` (not updates of one already there), how long after its `created_at` it got
 * there: the part of lock enforcement this process controls. Returns the unsubscribe function.
 */
export function watchLockLag(view: LockChanges, metrics: Metrics, now: () => number): () => void {
  const seen = new Set<string>();
  return view.onChange((change) => {
    if (change.type === 'delete' && change.key) seen.delete(change.key);
    if (change.type !== 'put' || !change.key || seen.has(change.key)) return;
    seen.add(change.key);
    const created = Date.parse(change.value?.spec?.created_at ?? '');
    if (Number.isFinite(created)) metrics.lockLag((now() - created) / 1000);
  });
}
