/** `wbot`: the bot client for CI jobs and scripts (its commands: wbot/commands.ts). */
import { main } from './io';
import { wbot } from './wbot/program';

await main(wbot);
