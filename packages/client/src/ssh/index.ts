/**
 * The SSH client: reach a node through the proxy (`dialNode`), then speak SSH over that stream
 * with the user's Warden certificate, trusting only host certificates from the cluster's host
 * CA; sessions with exit codes, PTYs and stdin; `-L` forwarding; and the OpenSSH config for
 * plain `ssh`/`scp`. ssh2 is the protocol engine; `@warden/api/ssh2-patch` adds certificate
 * support to it (used by connect.ts).
 * Who may import: the CLI (`wsh ssh`, `wsh proxy ssh`, `wsh config`, `wsh ls`) through
 * `@warden/client`. Tested by the colocated unit tests and test/ssh-client/ (real sshd).
 */
export { connectNode, NodeSsh, type NodeSshOptions, type PtyRequest, type SshChannel } from './connect';
export { dialNode, type NodeInfo } from './dial';
export { channelError, proxyError, sshRejected } from './errors';
export { type ForwardSpec, type LocalForward, parseForwardSpec, startLocalForward } from './forward';
export { type HostCertificateCheck, hostCaKeys, verifyHostCertificate } from './host-cert';
export {
  AES_FIRST_CIPHERS,
  bundledRelay,
  cpuHasAes,
  OPENSSH_FILES,
  type OpenSshConfigOptions,
  openSshConfig,
  openSshMatchConfig,
  realpathOr,
  relayCommandLine,
  shellQuote,
  writeOpenSshIdentityPub,
} from './openssh-config';
export {
  attachSession,
  ptyRequest,
  runSession,
  type SessionIo,
  type SessionOptions,
  signalExitCode,
  type WindowSize,
} from './session';
