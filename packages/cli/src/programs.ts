/**
 * The two programs as data (name, summary, command table, environment): what `wsh`/`wctl`
 * run, and what completion scripts and man pages are generated from. Loads no command code.
 */
import type { Program } from './command';
import { wctlCommands, wctlEnv, wctlGlobalOptions } from './wctl/commands';
import { wshCommands, wshEnv } from './wsh/commands';

export const VERSION = '0.1.0';

/** `wsh`: the user's client. */
export const wsh: Program = {
  name: 'wsh',
  summary: 'Warden client: log in to a Warden cluster and reach its resources.',
  version: VERSION,
  commands: wshCommands,
  env: wshEnv,
};

/**
 * `wctl`: the administrator's tool. On the auth host it uses the admin identity that
 * `warden start` writes into the data dir; elsewhere the `wsh login` profile.
 */
export const wctl: Program = {
  name: 'wctl',
  summary: 'Warden admin tool: users, roles, locks, resources, certificate authorities and audit.',
  version: VERSION,
  commands: wctlCommands,
  globalOptions: wctlGlobalOptions,
  env: wctlEnv,
};
