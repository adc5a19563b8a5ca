/**
 * The command line of ssh_config's ProxyCommand in a bot's destination. OpenSSH starts it for
 * every session, so it is dist/wsh-proxy-ssh.js (`wsh proxy ssh` alone in one file, which
 * starts fastest) when this wbot is the bundled dist/wbot.js beside it, else the wsh beside
 * this wbot (from the sources under tsx). Only node: built-ins and a quoting helper: wbot
 * loads no ssh code (test/bots/wbot-bundle.test.ts).
 */
import { bundledRelay, realpathOr, shellQuote } from '@warden/client';

/**
 * `node [flags] <wsh-proxy-ssh.js | wsh>` quoted for sh; the caller appends `-i IDENTITY` (the
 * one-file build takes wsh's global options) and ssh_config adds `proxy ssh --login=%r %h`.
 *
 * @example
 *   proxySshCommandLine('/usr/bin/node', [], '/opt/warden/dist/wbot.js')
 *   // → "env -u NODE_EXTRA_CA_CERTS … /usr/bin/node --use-openssl-ca /opt/warden/dist/wsh-proxy-ssh.js"
 *   //   (when that file exists: relayCommandLine)
 */
export function proxySshCommandLine(
  execPath: string = process.execPath,
  execArgv: readonly string[] = process.execArgv,
  script: string = process.argv[1] ?? 'wbot',
): string {
  const { path, relay } = bundledRelay(execPath, execArgv, script, 'wbot.js');
  if (relay) return relay;
  const wsh = realpathOr(path.replace(/wbot(\.[cm]?[jt]s)?$/, 'wsh$1'));
  return [execPath, ...execArgv, wsh].map(shellQuote).join(' ');
}
