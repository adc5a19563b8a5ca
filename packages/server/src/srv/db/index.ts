/**
 * db_service: database access through Warden (DESIGN §1). `common/` holds what every
 * protocol shares, one folder per protocol holds its engine (`postgres/`, `mysql/`).
 * Who may import: `bin/` (composition), `proxy/` (the hand-off types) and tests.
 */
export * from './common';
export * from './mysql';
export * from './postgres';
