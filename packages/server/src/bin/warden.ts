/**
 * `warden`: the daemon's command line. `warden start` composes everything (the only place
 * that does): config → logger → backend → audit → services → CAs → auth → proxy listener.
 */
import 'reflect-metadata';
import { runWarden } from './start';

process.exitCode = await runWarden(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
