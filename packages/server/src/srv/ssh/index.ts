/**
 * ssh_service (DESIGN §1, issue 3): the node's SSH server. Presents a host certificate from
 * the host CA, authenticates users only by Warden SSH user certificates, decides access with
 * the shared access checker (locks, RBAC, device trust), runs shells, commands, sftp and
 * `-L` forwarding as the requested local login, ends live sessions when a lock appears,
 * audits decisions and sessions, and heartbeats its `node` resource.
 * Also the proxy's side of agentless OpenSSH nodes (`AgentlessForwarder`: per-session openssh
 * CA certificates, sessions relayed, locks shown to the user).
 * Who may import: `bin/` (composition), `proxy/` (agentless sessions) and tests. Tested against the real OpenSSH client in
 * `test/ssh-node/` and by the colocated unit tests.
 */
export {
  AgentlessForwarder,
  type AgentlessHandle,
  type AgentlessNode,
  type AgentlessOptions,
  type AgentlessSession,
} from './agentless';
export { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TTL_MS } from './heartbeat';
export { HOST_KEY_FILE, HOST_UUID_FILE } from './host-identity';
export { SshService, type SshServiceOptions } from './service';
export { afterGrace } from './session-end';
export { verifyUserCertificate } from './user-cert';
