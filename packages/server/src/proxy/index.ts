/**
 * The proxy: the HTTPS listener on the proxy port serving the RPC API, and ALPN-routed SSH
 * (`warden-ssh/1`) and database (`warden-db/1`) traffic. Who may import: `bin/`. Tested end to end in test/.
 */
export { type ApiDeps, apiRoutes } from './api';
export { AppRouting } from './app-routing';
export {
  DbDirect,
  type DbDirectOptions,
  type FrontDoorOptions,
  mysqlDirectListener,
  POSTGRES_ALPN,
  proxyFrontDoor,
} from './db-direct';
export { type DbTunnelOptions, DbTunnels, dbInfo } from './db-tunnel';
export { DbView, type DbViewOptions } from './db-view';
export { findNode, NodeView, type NodeViewOptions } from './node-view';
export { type NodeDecider, reachableNodes } from './nodes';
export {
  createRequestHandler,
  type Logger,
  type PublicRouteLimits,
  type RequestContext,
  type Route,
  type RouterOptions,
  readLimitedBody,
  retryAfterHeader,
} from './router';
export { type LocalSshNode, nodeInfo, type SshTunnelOptions, SshTunnels } from './ssh-tunnel';
