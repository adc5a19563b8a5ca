/**
 * `wsh`: the user's client. Sign up, log in, show status, log out (SSH, databases and device
 * commands join in later issues).
 */
import type { Program } from './command';
import { main, VERSION } from './io';
import { wshCommands, wshEnv } from './wsh/commands';

export const wsh: Program = {
  name: 'wsh',
  summary: 'Warden client: log in to a Warden cluster and reach its resources.',
  version: VERSION,
  commands: wshCommands,
  env: wshEnv,
};

await main(wsh);
