/**
 * undici's connection pool on its own (`undici/lib/dispatcher/pool.js`, CommonJS): the package's
 * main entry also loads fetch, WebSocket, caches and mocks, which the forwarder does not use
 * (about 0.6 MB more in dist/warden.js). Typed as undici's `Pool`.
 */
declare module 'undici/lib/dispatcher/pool.js' {
  import type { Pool } from 'undici';

  const PoolClass: typeof Pool;
  export = PoolClass;
}
