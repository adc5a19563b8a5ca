/**
 * `wctl`: the administrator's tool. On the auth host it uses the admin identity that
 * `warden start` writes into the data dir; elsewhere the `wsh login` profile.
 */
import type { Program } from './command';
import { main, VERSION } from './io';
import { wctlCommands, wctlEnv, wctlGlobalOptions } from './wctl/commands';

export const wctl: Program = {
  name: 'wctl',
  summary: 'Warden admin tool: users, roles, locks, resources, certificate authorities and audit.',
  version: VERSION,
  commands: wctlCommands,
  globalOptions: wctlGlobalOptions,
  env: wctlEnv,
};

await main(wctl);
