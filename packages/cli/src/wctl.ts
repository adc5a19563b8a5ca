/** `wctl`: the administrator's tool (its commands: wctl/commands.ts). */
import { main } from './io';
import { wctl } from './wctl/program';

await main(wctl);
