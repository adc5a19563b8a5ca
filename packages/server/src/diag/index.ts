/**
 * Operational endpoints: Prometheus metrics (a registry other code counts into) and the
 * diagnostics HTTP listener with /metrics, /healthz and /readyz. See metrics.ts and server.ts.
 * Who may import: `bin/` (composition); services import only the `Metrics` type and
 * `noopMetrics`.
 */
export {
  countAuditEvent,
  createMetrics,
  instrumentAudit,
  instrumentBackend,
  type LockChanges,
  type Metrics,
  type MetricsRegistry,
  noopMetrics,
  type Outcome,
  watchLockLag,
} from './metrics';
export { type DiagServer, type DiagServerOptions, type ReadinessCheck, startDiagServer } from './server';
export { type StallWatchOptions, watchEventLoopStalls } from './stall';
