/**
 * A small command framework for `wsh` and `wctl`: commands with typed options (node:util
 * parseArgs), `--help` on every command, and one place that turns errors into
 * `ERROR: <message>` and an exit code. Subcommand modules load lazily so the CLIs start fast.
 */
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** Placeholder shown in help, e.g. "NAME". */
  value?: string;
  help: string;
}

export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface CommandContext {
  values: Values;
  positionals: string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** Words after the program name, e.g. ['users', 'add']. */
  path: string[];
  summary: string;
  usage?: string;
  /** Extra help text (examples). */
  details?: string;
  options?: Record<string, OptionSpec>;
  /** Allowed positional arguments: [min, max]. */
  args?: [number, number];
  /**
   * Parse flags only up to the first positional argument; it and everything after it are
   * positionals, verbatim (`wsh ssh node ls -la`: `-la` belongs to the remote command).
   */
  stopAtFirstPositional?: boolean;
  run(ctx: CommandContext): Promise<number | undefined>;
}

export interface Program {
  name: string;
  summary: string;
  version: string;
  commands: Command[];
  globalOptions?: Record<string, OptionSpec>;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'show help for the command' };

function optionHelp(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? `=${o.value ?? 'VALUE'}` : ''}`;
    return [flag, o.help + (o.default !== undefined && o.default !== false ? ` (default ${o.default})` : '')];
  });
  const width = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([f, h]) => `  ${f!.padEnd(width)}  ${h}`).join('\n');
}

export function commandHelp(program: Program, cmd: Command): string {
  const opts = { ...(cmd.options ?? {}), ...(program.globalOptions ?? {}), help: HELP };
  return [
    `Usage: ${program.name} ${cmd.usage ?? cmd.path.join(' ')}`,
    '',
    cmd.summary,
    ...(cmd.details ? ['', cmd.details.trimEnd()] : []),
    '',
    'Flags:',
    optionHelp(opts),
    '',
  ].join('\n');
}

export function programHelp(program: Program, prefix: string[] = []): string {
  const cmds = program.commands.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const width = Math.max(...cmds.map((c) => c.path.join(' ').length));
  return [
    `Usage: ${program.name} ${prefix.length ? `${prefix.join(' ')} ` : ''}COMMAND [FLAGS]`,
    '',
    program.summary,
    '',
    'Commands:',
    ...cmds.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    `Run \`${program.name} COMMAND --help\` for a command's flags.`,
    '',
  ].join('\n');
}

/** Finds the command whose path is the longest prefix of argv. */
function findCommand(program: Program, argv: string[]): { cmd?: Command; rest: string[]; prefix: string[] } {
  let best: Command | undefined;
  for (const c of program.commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  if (best) return { cmd: best, rest: argv.slice(best.path.length), prefix: best.path };
  const words: string[] = [];
  for (const w of argv) {
    if (w.startsWith('-')) break;
    if (!program.commands.some((c) => [...words, w].every((x, i) => c.path[i] === x))) break;
    words.push(w);
  }
  return { rest: argv.slice(words.length), prefix: words };
}

export async function runProgram(
  program: Program,
  argv: string[],
  io: Omit<CommandContext, 'values' | 'positionals'>,
): Promise<number> {
  const write = (s: string) => io.stdout.write(s);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    write(programHelp(program));
    return argv.length === 0 ? 1 : 0;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    write(`${program.name} v${program.version} node ${process.version}\n`);
    return 0;
  }
  const { cmd, rest, prefix } = findCommand(program, argv);
  if (!cmd) {
    if (prefix.length > 0) {
      if (rest.some((a) => a === '--help' || a === '-h') || rest.length === 0) {
        write(programHelp(program, prefix));
        return rest.length === 0 ? 1 : 0;
      }
      io.stderr.write(`ERROR: unknown command "${program.name} ${[...prefix, rest[0]].join(' ')}"\n`);
      io.stderr.write(programHelp(program, prefix));
      return 1;
    }
    io.stderr.write(`ERROR: unknown command "${argv[0]}"; run \`${program.name} --help\`\n`);
    return 1;
  }
  const options = { ...(cmd.options ?? {}), ...(program.globalOptions ?? {}), help: HELP };
  const [flagArgs, verbatim] = cmd.stopAtFirstPositional ? splitAtFirstPositional(rest, options) : [rest, []];
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: flagArgs,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [
          k,
          Object.fromEntries(
            Object.entries({ type: o.type, short: o.short, multiple: o.multiple, default: o.default }).filter(
              ([, v]) => v !== undefined,
            ),
          ) as never,
        ]),
      ),
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] };
    parsed.positionals.push(...verbatim);
  } catch (e) {
    io.stderr.write(`ERROR: ${(e as Error).message.split('\n')[0]}\n\n${commandHelp(program, cmd)}`);
    return 1;
  }
  if (parsed.values.help) {
    write(commandHelp(program, cmd));
    return 0;
  }
  const [min, max] = cmd.args ?? [0, 0];
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    io.stderr.write(
      `ERROR: ${parsed.positionals.length < min ? 'missing argument' : `unexpected argument "${parsed.positionals[max]}"`}\n\n${commandHelp(program, cmd)}`,
    );
    return 1;
  }
  try {
    return (await cmd.run({ ...io, ...parsed })) ?? 0;
  } catch (e) {
    io.stderr.write(`${formatError(e, io.env)}\n`);
    return 1;
  }
}

/**
 * Splits argv before its first positional argument (or after a `--`), knowing which flags
 * take a value (`--login NAME`, `-L SPEC`, `-tL SPEC`), so a flag's value is never taken for
 * the first positional.
 */
export function splitAtFirstPositional(
  args: string[],
  options: Record<string, OptionSpec>,
): [string[], string[]] {
  const byShort = new Map(Object.values(options).flatMap((o) => (o.short ? [[o.short, o] as const] : [])));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return [args.slice(0, i), args.slice(i + 1)];
    if (!a.startsWith('-') || a === '-') return [args.slice(0, i), args.slice(i)];
    if (a.startsWith('--')) {
      if (!a.includes('=') && options[a.slice(2)]?.type === 'string') i++;
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      if (byShort.get(a[j]!)?.type !== 'string') continue;
      if (j === a.length - 1) i++;
      break;
    }
  }
  return [args, []];
}

export function formatError(e: unknown, env: NodeJS.ProcessEnv): string {
  // Checked by shape, not instanceof: this module must not load @warden/api, so `--help` stays fast.
  if ((e as Error)?.name === 'WardenError') return `ERROR: ${(e as Error).message}`;
  if (env.WARDEN_DEBUG) return `ERROR: ${(e as Error)?.stack ?? String(e)}`;
  return `ERROR: ${(e as Error)?.message ?? String(e)}`;
}

/** Reads a string option, or undefined. */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Splits comma-separated list options (`--roles=a,b --roles=c`). */
export function list(values: Values, name: string): string[] {
  const v = values[name];
  const raw = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  return raw
    .flatMap((s) => String(s).split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

export const formatOption: OptionSpec = {
  type: 'string',
  value: 'text|json|yaml',
  default: 'text',
  help: 'output format',
};
