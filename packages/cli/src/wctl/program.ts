/**
 * `wctl`: the administrator's tool, as data (its command table: ./commands). On the auth host
 * it uses the admin identity that `warden start` writes into the data dir; elsewhere the
 * `wsh login` profile. Loads no command code.
 */
import type { Program } from '../command';
import { VERSION } from '../version';
import { wctlCommands, wctlEnv, wctlGlobalOptions } from './commands';

export const wctl: Program = {
  name: 'wctl',
  summary: 'Warden admin tool: users, roles, locks, resources, certificate authorities and audit.',
  version: VERSION,
  commands: wctlCommands,
  globalOptions: wctlGlobalOptions,
  env: wctlEnv,
};
