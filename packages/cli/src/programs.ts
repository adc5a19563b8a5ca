/**
 * The three programs as data (name, summary, command table, environment): what completion
 * scripts and man pages are generated from. The `wsh`, `wctl` and `wbot` entry points import
 * their own program only (wsh/program.ts, wctl/program.ts, wbot/program.ts), so none loads
 * another's table.
 */
export { VERSION } from './version';
export { wbot } from './wbot/program';
export { wctl } from './wctl/program';
export { wsh } from './wsh/program';
