/**
 * What wsh's command table (./commands) shares with dist/wsh-proxy-ssh.js (../wsh-proxy-ssh.ts):
 * the environment variables and global flags, and the `proxy ssh` command without its code.
 * No command code here.
 */
import { type Command, identityOption, type OptionSpec } from '../command';

/** The environment variables wsh reads (listed in every `wsh … --help`). */
export const wshEnv: [string, string][] = [
  ['WARDEN_PROXY', 'proxy address when --proxy is not given (default: the last one used)'],
  [
    'WARDEN_USER',
    'user name for `wsh login` when --user is not given (default: the last one, else the OS user)',
  ],
  ['WARDEN_HOME', 'where profiles (keys, certificates) live (default ~/.warden)'],
  ['WARDEN_TPM', 'TPM device for device trust (default /dev/tpmrm0)'],
  ['WARDEN_DEVICE_CACHE', 'where the wrapped device key lives (default ~/.cache/warden-device)'],
  ['WARDEN_DEBUG', 'set to 1 for debug details, as --debug'],
  ['WARDEN_WEB_HELPER', '`off`: `wsh login` never starts the device web-helper (as --web-helper=off)'],
  [
    'WARDEN_WEB_HELPER_PORTS',
    "the device web-helper's ports, comma-separated (default 41780,41781,41782,41783; the proxy's must match)",
  ],
];

/** Flags every wsh command takes (they may also come before the command). */
export const wshGlobalOptions: Record<string, OptionSpec> = { identity: identityOption };

/** `wsh proxy ssh`, OpenSSH's ProxyCommand; `run` is added where it is loaded. */
export const proxySshSpec: Omit<Command, 'run'> = {
  path: ['proxy', 'ssh'],
  summary: "Connect stdin/stdout to a node's SSH server through the proxy (an OpenSSH ProxyCommand).",
  usage: 'proxy ssh [--login=LOGIN] [LOGIN@]NODE[:PORT]',
  details: 'Used by the config from `wsh config`: ProxyCommand wsh proxy ssh --login=%r %h',
  options: {
    login: { type: 'string', short: 'l', value: 'LOGIN', help: 'remote login (default: your first login)' },
  },
  args: [1, 1],
  errorExitCode: 255,
};
