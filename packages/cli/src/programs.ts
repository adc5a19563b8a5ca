/**
 * The two programs as data (name, summary, command table, environment): what completion
 * scripts and man pages are generated from. The `wsh` and `wctl` entry points import their
 * own program only (wsh/program.ts, wctl/program.ts), so neither loads the other's table.
 */
export { VERSION } from './version';
export { wctl } from './wctl/program';
export { wsh } from './wsh/program';
