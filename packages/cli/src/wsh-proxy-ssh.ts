/**
 * `wsh proxy ssh` on its own, bundled into one file (dist/wsh-proxy-ssh.js): the ProxyCommand
 * that `wsh config` writes. OpenSSH starts it for every session, so its start-up is part of
 * every session's setup (bench/ssh.ts). It is wsh restricted to that one command — same
 * flags, help, errors and exit codes (`node dist/wsh-proxy-ssh.js proxy ssh …`) — and one file
 * with nothing else in it loads faster than wsh's command table and shared chunks.
 */
import { main } from './io';
import { VERSION } from './version';
import { proxySshSpec, wshEnv, wshGlobalOptions } from './wsh/base';
import { runProxySsh } from './wsh/proxy-ssh';

await main({
  name: 'wsh',
  summary: 'Warden client: the OpenSSH ProxyCommand (`wsh proxy ssh`).',
  version: VERSION,
  commands: [{ ...proxySshSpec, run: runProxySsh }],
  globalOptions: wshGlobalOptions,
  env: wshEnv,
});
