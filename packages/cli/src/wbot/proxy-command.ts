/**
 * The command line of ssh_config's ProxyCommand in a bot's destination. OpenSSH starts it for
 * every session, so it is dist/wsh-proxy-ssh.js (`wsh proxy ssh` alone in one file, which
 * starts fastest) when this wbot is the bundled dist/wbot.js beside it, else the wsh beside
 * this wbot (from the sources under tsx). Only node: built-ins and a quoting helper: wbot
 * loads no ssh code (test/bots/wbot-bundle.test.ts).
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { relayCommandLine, shellQuote } from '@warden/client';

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

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
  const path = realpathOr(resolve(script));
  const alone = join(dirname(path), 'wsh-proxy-ssh.js');
  if (basename(path) === 'wbot.js' && existsSync(alone)) return relayCommandLine(execPath, execArgv, alone);
  const wsh = realpathOr(path.replace(/wbot(\.[cm]?[jt]s)?$/, 'wsh$1'));
  return [execPath, ...execArgv, wsh].map(shellQuote).join(' ');
}
