/**
 * Storage backends (DESIGN §3). Who may import: server modules. Tested by the conformance
 * suite in `conformance.ts` (imported directly by each implementation's test, never through
 * this index), run against every implementation, plus a SIGKILL test for SQLite.
 */

export { MemoryBackend, type MemoryBackendOptions } from './memory';
export { SqliteBackend, type SqliteBackendOptions } from './sqlite';
export type { Backend, BackendEvent, Item, RangeResult, Watcher, WatchOptions, WriteOptions } from './types';
