/**
 * @warden/server: backend, auth, CAs, access checker, proxy, agents, audit, config and the
 * `warden` command. May import @warden/api and @warden/tpm; never @warden/client.
 */
export * from './access';
export * from './audit';
export * from './auth';
export * from './backend';
export { type AuthServerOptions, createAuthServer } from './bin';
export * from './ca';
export * from './clock';
export * from './config';
export * from './devicetrust';
export * from './log';
export * from './services';
/** WebSocket server frames (RFC 6455), for testkit's fake Kubernetes API server. */
export { closeFrame, serverFrame } from './srv/kube';
export * from './srv/ssh';
export * from './tokens';
