/** Process wiring shared by `wsh` and `wctl`: exit codes for broken pipes and Ctrl-C. */
import { INTERRUPTED_EXIT, type Program, runProgram } from './command';

/** 128 + SIGPIPE: what a shell reports for a Unix tool whose reader went away (`| head -1`). */
export const BROKEN_PIPE_EXIT = 141;

/**
 * Once for every command: a reader that goes away early (`wsh config | head -1`) ends the
 * process quietly, as SIGPIPE ends other tools, instead of an EPIPE stack trace; Ctrl-C exits
 * 130. Commands that put the terminal in raw mode (a PTY session) see Ctrl-C as input instead.
 */
export function installProcessHandlers(proc: NodeJS.Process = process): void {
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') proc.exit(BROKEN_PIPE_EXIT);
      throw e;
    });
  }
  // Commands that handle ^C themselves (`wsh db connect` passes it to psql, `wsh proxy db`
  // stops its listener) add their own listener; then this one stands aside.
  proc.on('SIGINT', () => {
    if (proc.listenerCount('SIGINT') === 1) proc.exit(INTERRUPTED_EXIT);
  });
}

export async function main(program: Program): Promise<void> {
  installProcessHandlers();
  const code = await runProgram(program, process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  process.exitCode = code;
}
