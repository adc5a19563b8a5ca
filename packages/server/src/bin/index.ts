/**
 * The composition root: `warden` (`warden.ts`, `start.ts`), db_service and ops wiring, and
 * `createAuthServer` (the auth service with its stores, limiter and inventory), which tests and
 * benchmarks use to run an auth service in process as `warden start` does.
 * Who may import: the package's `index.ts` and tests; nothing under `src/` (bin imports them).
 */
export { type AuthServerOptions, createAuthServer } from './auth';
