/**
 * `wbot`: the bot client, as data (its command table: ./commands). A separate program (as
 * `wsh` and `wctl` are) rather than a mode of the `warden` daemon: it is a client that runs
 * on CI runners and servers that have no Warden daemon, and it shares wsh's profile layout
 * and API client. Loads no command code.
 */
import type { Program } from '../command';
import { VERSION } from '../version';
import { wbotCommands, wbotEnv } from './commands';

export const wbot: Program = {
  name: 'wbot',
  summary: 'Warden bot client: join with a token from `wctl bots add` and keep certificates fresh.',
  version: VERSION,
  commands: wbotCommands,
  env: wbotEnv,
};
