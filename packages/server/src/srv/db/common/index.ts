/**
 * What every database protocol shares in db_service (DESIGN §1, §5): the hand-off from the
 * proxy (`DbHandoff`: `serve` a `DbConnection`, `refuse` with a reason), the engine contract
 * (`DbEngine`), sessions with their access check and audit (`DbSession`, registered with
 * the process's SessionMonitor, which ends them when a lock arrives), the upstream TLS credentials (client
 * certificates from the db CA, CN = db user), the heartbeat of configured databases, and
 * `DbService`, which ties them together.
 *
 * A new protocol (MySQL) adds a folder beside `postgres/` with a class implementing
 * `DbEngine` and is passed to `DbService` in `engines`; nothing here changes.
 * Who may import: `srv/db/*` engines, `proxy/` (types only) and `bin/` (composition).
 * Tested by the colocated `*.test.ts` and end to end in `test/db/`.
 */
export { type DbInfo, dbTarget, reachableDbs } from './access';
export { endWith, refuseAtOpening } from './end-with';
export { dbResourceFromConfig } from './heartbeat';
export { type RelayOptions, relay, type Tap, TapBase, type TapSink, TERMINATE_GRACE_MS } from './relay';
export { DbService, type DbServiceOptions } from './service';
export { type DbQuery, DbSession, type DbSessionDeps } from './session';
export { StreamReader } from './stream-reader';
export type { DbCancel, DbConnection, DbEngine, DbHandoff, DbRefusal } from './types';
export {
  DB_CLIENT_CERT_TTL_MS,
  type DbCertIssuer,
  dbCertIssuer,
  dialTcp,
  splitUri,
  UpstreamCredentials,
  type UpstreamTlsOptions,
  upgrade,
} from './upstream';
