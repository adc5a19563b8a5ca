/**
 * Storage backends (DESIGN §3). Who may import: server modules. Tested by the conformance
 * suite in `conformance.ts`, run against every implementation.
 */

export { MemoryBackend, type MemoryBackendOptions } from './memory';
export type { Backend, BackendEvent, Item, RangeResult, Watcher, WatchOptions, WriteOptions } from './types';
