/** `wsh`: the user's client, as data (its command table: ./commands). Loads no command code. */
import type { Program } from '../command';
import { VERSION } from '../version';
import { wshCommands, wshEnv, wshGlobalOptions } from './commands';

export const wsh: Program = {
  name: 'wsh',
  summary: 'Warden client: log in to a Warden cluster and reach its resources.',
  version: VERSION,
  commands: wshCommands,
  globalOptions: wshGlobalOptions,
  env: wshEnv,
};
