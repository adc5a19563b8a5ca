/** `wsh`: the user's client (its commands: wsh/commands.ts). */
import { main } from './io';
import { wsh } from './programs';

await main(wsh);
