/**
 * The RPC routes (see rpc.ts, which re-exports them as `rpc.Routes`), without zod: a client
 * names a route at start-up and loads the schemas only when it validates an answer.
 * Exported at the package root as `rpcRoutes`. Who may import: everyone.
 */

export const RPC_VERSION = 'v1';

export const Routes = {
  ping: '/v1/ping',
  signupBegin: '/v1/signup/begin',
  signupFinish: '/v1/signup/finish',
  login: '/v1/login',
  whoami: '/v1/whoami',
  resources: '/v1/resources',
  users: '/v1/users',
  /** GET lists bots, POST adds one with a join token (`wctl bots ls|add`); DELETE …/:name. */
  bots: '/v1/bots',
  /** POST: a bot's first certificates for its one-time join token (unauthenticated). */
  botJoin: '/v1/bots/join',
  /** POST: a bot's next certificates, authenticated by its current ones. */
  botRenew: '/v1/bots/renew',
  /** GET lists open join, invite and enrollment tokens (`wctl tokens ls`); DELETE …/:id. */
  tokens: '/v1/tokens',
  locks: '/v1/locks',
  nodes: '/v1/nodes',
  dbs: '/v1/dbs',
  /** POST: a database certificate for the caller's key (`wsh db login`). */
  dbLogin: '/v1/dbs/login',
  /** GET: Kubernetes clusters the caller may reach (`wsh kube ls`). */
  kubeClusters: '/v1/kube/clusters',
  /** POST: a short-lived Kubernetes client certificate for a fresh key (`wsh kube credentials`). */
  kubeCerts: '/v1/kube/certs',
  /** GET: apps the caller may reach (`wsh apps ls`). */
  apps: '/v1/apps',
  /** POST: an app certificate for the caller's key (`wsh app login`). */
  appLogin: '/v1/apps/login',
  /** The `jwt` CA's public keys (JSON Web Key Set), for apps verifying `Warden-Jwt-Assertion`. */
  jwks: '/.well-known/jwks.json',
  authorities: '/v1/authorities',
  audit: '/v1/audit/events',
  /** The device inventory: POST adds a device (`wctl devices add`). */
  devices: '/v1/devices',
  /** POST makes an enrollment token for a device (`wctl devices enroll`). */
  deviceTokens: '/v1/devices/tokens',
  deviceEnrollBegin: '/v1/devices/enroll/begin',
  deviceEnrollFinish: '/v1/devices/enroll/finish',
  deviceAuthnBegin: '/v1/devices/authn/begin',
  deviceAuthnFinish: '/v1/devices/authn/finish',
  /** Browser device trust: `wsh device web-helper` proves the device for a web session. */
  deviceWebBegin: '/v1/devices/web/begin',
  deviceWebFinish: '/v1/devices/web/finish',
} as const;
