/**
 * The proxy: the HTTPS listener on the proxy port serving the RPC API (and, in later issues,
 * ALPN-routed SSH and database traffic). Who may import: `bin/`. Tested end to end in test/.
 */
export { type ApiDeps, apiRoutes } from './api';
export {
  createRequestHandler,
  type Logger,
  type RequestContext,
  type RequestIdentity,
  type Route,
  type RouterOptions,
} from './router';
export { findNode, nodeInfo, SSH_ALPN, type SshTunnelOptions, SshTunnels } from './ssh-tunnel';
