/**
 * The composition root: `warden` (`warden.ts`, `start.ts`), db_service, app_service and ops
 * wiring, and `createAuthServer` (the auth service with its stores, limiter and inventory),
 * which tests and benchmarks use to run an auth service, db_service and app_service in process
 * as `warden start` does (`startDbAccess`, `startAppAccess`), and `start` itself (a whole
 * `warden start` in process, from a parsed config).
 * Who may import: the package's `index.ts` and tests; nothing under `src/` (bin imports them).
 */
export { type AppAccessComposition, accessViewChanges, startAppAccess } from './app';
export { type AuthServerOptions, createAuthServer } from './auth';
export { type DbAccessComposition, startDbAccess } from './db';
export { type Running, start } from './start';
