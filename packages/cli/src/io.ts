/** Process wiring shared by `wsh` and `wctl`. */
import { type Program, runProgram } from './command';

export const VERSION = '0.1.0';

export async function main(program: Program): Promise<void> {
  const code = await runProgram(program, process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  process.exitCode = code;
}
