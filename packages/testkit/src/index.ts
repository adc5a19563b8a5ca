/**
 * @warden/testkit: real parts for the cross-package tests under test/ — a `warden` process in
 * a temp dir, the built `wsh`/`wctl` run as a user would (argv, stdin lines, exit codes),
 * TOTP codes computed from a URI. Imported only by tests.
 */
export {
  CHROMIUM_PATH,
  launchChromium,
  newBrowserContext,
  requireChromium,
  SCREENSHOT_DIR,
  screenshot,
} from './chromium';
export { type CliResult, type RunningCli, runCli, runCliClosedStdout, spawnCli, succeeded } from './cli';
export {
  deviceIdOf,
  enrollMachine,
  requireSwtpm,
  setDeviceTrust,
  startMachine,
  type TpmMachine,
} from './devices';
export { type HttpApp, startHttpApp } from './http-app';
export {
  type CertFiles,
  type FakeKubeApiServer,
  type FakeKubeOptions,
  type KubectlResult,
  type KubeRule,
  kubectl,
  type RecordedExec,
  type RecordedKubeRequest,
  type RunningKubectl,
  requireKubectl,
  spawnKubectl,
  startFakeKubeApiServer,
  startFakeKubeWithWebPod,
  TestPki,
} from './kube';
export { withMachineLock } from './machine-lock';
export { type MariaDbServer, type MariaDbServerOptions, requireMariaDb, startMariaDb } from './mariadb';
export { type NginxOptions, type NginxServer, requireNginx, startNginx } from './nginx';
export { acceptsTcp, freePort, waitForListener } from './ports';
export {
  type PostgresServer,
  type PostgresServerOptions,
  postgresBinDir,
  requirePostgres,
  startPostgres,
  wardenStorage,
} from './postgres';
export {
  type CollectOptions,
  captureOutput,
  collectProcess,
  type ProcessOutput,
  type ProcessResult,
  runCommand,
  type TrackedProcess,
  trackProcess,
} from './process';
export { type AgentlessSshd, registerAgentlessNode, startAgentlessSshd } from './sshd';
export { flipNvBit, type SwtpmProcess, type SwtpmStartOptions, startSwtpm, writeEkCertChain } from './swtpm';
export { type SelfSignedOptions, selfSignedCert } from './tls';
export { requireTool, type ToolCheck } from './tools';
export { Authenticator, totpFromUri } from './totp';
export { addUserAndLogin, inviteAndSignUp, signupWithTotp } from './users';
export { waitForText, waitUntil } from './wait';
export { startWarden, type WardenProcess, type WardenStartOptions } from './warden';
