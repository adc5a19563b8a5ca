/**
 * A small command framework for `wsh` and `wctl`: commands with typed options (node:util
 * parseArgs), `--help` on every command, and one place that turns errors into
 * `ERROR: <message>` and an exit code. Subcommand modules load lazily so the CLIs start fast.
 */
import { parseArgs } from 'node:util';
import { WardenError } from '@warden/api';
import type { z } from 'zod';

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
  /**
   * Words after `--` go verbatim to another program, named here for messages (`psql or
   * mysql`); before `--` the command's own flags may come before or after its positionals
   * (`wsh db connect orders --db-user=alice -- -c 'select 1'`). `args` counts only the words
   * before `--`.
   */
  passThroughAfterDashDash?: string;
  /**
   * Exit code for the command's own failures (default 1). `wsh ssh` uses 255, as OpenSSH does,
   * so a refusal by the proxy is told apart from a remote command's `exit 1`.
   */
  errorExitCode?: number;
  run(ctx: CommandContext): Promise<number | undefined>;
}

export interface Program {
  name: string;
  summary: string;
  version: string;
  commands: Command[];
  globalOptions?: Record<string, OptionSpec>;
  /** Environment variables the program reads: [name, what it does]; listed in every `--help`. */
  env?: [string, string][];
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'show help for the command' };
const DEBUG: OptionSpec = {
  type: 'boolean',
  help: 'print debug details (stack traces of errors); same as WARDEN_DEBUG=1',
};

/** Every flag a command accepts: its own, the program's global ones, --debug and --help. */
export function allOptions(program: Program, cmd: Command): Record<string, OptionSpec> {
  return { ...(cmd.options ?? {}), ...(program.globalOptions ?? {}), debug: DEBUG, help: HELP };
}

function envHelp(program: Program): string[] {
  if (!program.env?.length) return [];
  const width = Math.max(...program.env.map(([n]) => n.length));
  return ['Environment:', ...program.env.map(([n, h]) => `  ${n.padEnd(width)}  ${h}`), ''];
}

function optionHelp(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? `=${o.value ?? 'VALUE'}` : ''}`;
    return [flag, o.help + (o.default !== undefined && o.default !== false ? ` (default ${o.default})` : '')];
  });
  const width = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([f, h]) => `  ${f!.padEnd(width)}  ${h}`).join('\n');
}

export function commandHelp(program: Program, cmd: Command): string {
  const opts = allOptions(program, cmd);
  return [
    `Usage: ${program.name} ${cmd.usage ?? cmd.path.join(' ')}`,
    '',
    cmd.summary,
    ...(cmd.details ? ['', cmd.details.trimEnd()] : []),
    '',
    'Flags:',
    optionHelp(opts),
    '',
    ...envHelp(program),
  ].join('\n');
}

export function programHelp(program: Program, prefix: string[] = []): string {
  const cmds: Pick<Command, 'path' | 'summary'>[] = program.commands.filter((c) =>
    prefix.every((w, i) => c.path[i] === w),
  );
  if (prefix.length === 0) {
    cmds.push(
      { path: ['completion'], summary: 'Print a shell completion script (bash, zsh or fish).' },
      { path: ['version'], summary: 'Print the version.' },
    );
  }
  const width = Math.max(...cmds.map((c) => c.path.join(' ').length));
  return [
    `Usage: ${program.name} ${prefix.length ? `${prefix.join(' ')} ` : ''}COMMAND [FLAGS]`,
    '',
    program.summary,
    '',
    'Commands:',
    ...cmds.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Global flags:',
    optionHelp({ ...(program.globalOptions ?? {}), debug: DEBUG, help: HELP }),
    '',
    ...envHelp(program),
    `Run \`${program.name} COMMAND --help\` for a command's flags.`,
    '',
  ].join('\n');
}

/**
 * Global flags may come before the command (`wctl -c warden.yaml get roles`, as kubectl and
 * gh allow): they are moved after the command's words, where the parser expects them.
 */
export function moveLeadingGlobalFlags(program: Program, argv: readonly string[]): string[] {
  const globals: Record<string, OptionSpec> = { ...(program.globalOptions ?? {}), debug: DEBUG };
  const byShort = new Map<string, string>(
    Object.entries(globals).flatMap(([n, o]) => (o.short ? [[`-${o.short}`, n] as const] : [])),
  );
  const moved: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const long = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    const name = long !== undefined ? (globals[long] ? long : undefined) : byShort.get(a);
    if (!name) break;
    const takesValue = globals[name]!.type === 'string' && !a.includes('=');
    moved.push(...argv.slice(i, takesValue ? i + 2 : i + 1));
    i += takesValue ? 2 : 1;
  }
  if (moved.length === 0) return [...argv];
  const rest = argv.slice(i);
  const words = rest.findIndex((w) => w.startsWith('-'));
  const end = words < 0 ? rest.length : words;
  // Put them after the command words (before any of the command's own flags or arguments).
  let cut = 0;
  for (let n = end; n > 0; n--) {
    if (program.commands.some((c) => c.path.length === n && c.path.every((w, k) => rest[k] === w))) {
      cut = n;
      break;
    }
  }
  if (cut === 0) cut = end;
  return [...rest.slice(0, cut), ...moved, ...rest.slice(cut)];
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
  argv = moveLeadingGlobalFlags(program, argv);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    write(programHelp(program));
    return argv.length === 0 ? 1 : 0;
  }
  const builtin = (word: string) => !program.commands.some((c) => c.path[0] === word);
  if ((argv[0] === '--version' || argv[0] === 'version') && builtin('version')) {
    return runProgram({ ...program, commands: [versionCommand(program)] }, ['version', ...argv.slice(1)], io);
  }
  if (argv[0] === 'completion' && builtin('completion')) {
    return runProgram({ ...program, commands: [completionCommand(program)] }, argv, io);
  }
  const { cmd, rest, prefix } = findCommand(program, argv);
  if (!cmd) {
    if (prefix.length > 0) {
      if (rest.some((a) => a === '--help' || a === '-h') || rest.length === 0) {
        write(programHelp(program, prefix));
        return rest.length === 0 ? 1 : 0;
      }
      const words = program.commands
        .filter((c) => prefix.every((w, i) => c.path[i] === w))
        .map((c) => c.path[prefix.length] ?? '');
      io.stderr.write(
        `ERROR: unknown command "${program.name} ${[...prefix, rest[0]].join(' ')}"${didYouMean(rest[0] ?? '', words, (w) => `${program.name} ${[...prefix, w].join(' ')}`)}\n\n`,
      );
      io.stderr.write(programHelp(program, prefix));
      return 1;
    }
    const words = [...new Set(program.commands.map((c) => c.path[0]!)), 'completion', 'version', 'help'];
    io.stderr.write(
      `ERROR: unknown command "${argv[0]}"${didYouMean(argv[0]!, words, (w) => `${program.name} ${w}`)}; run \`${program.name} --help\`\n`,
    );
    return 1;
  }
  const options = allOptions(program, cmd);
  const dashDash = rest.indexOf('--');
  const [flagArgs, verbatim] = cmd.stopAtFirstPositional
    ? splitAtFirstPositional(rest, options)
    : cmd.passThroughAfterDashDash && dashDash >= 0
      ? [rest.slice(0, dashDash), rest.slice(dashDash + 1)]
      : [rest, []];
  const passHint = cmd.passThroughAfterDashDash
    ? `\nArguments for ${cmd.passThroughAfterDashDash} go after --: ${program.name} ${cmd.usage ?? cmd.path.join(' ')}\n`
    : '';
  const bad = checkFlags(flagArgs, options);
  if (bad) {
    io.stderr.write(
      `ERROR: ${bad}${passHint}\nRun \`${program.name} ${cmd.path.join(' ')} --help\` for its flags.\n`,
    );
    return 1;
  }
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
  } catch (e) {
    io.stderr.write(`ERROR: ${(e as Error).message.split('\n')[0]}\n\n${commandHelp(program, cmd)}`);
    return 1;
  }
  if (parsed.values.help) {
    write(commandHelp(program, cmd));
    return 0;
  }
  const env = parsed.values.debug ? { ...io.env, WARDEN_DEBUG: '1' } : io.env;
  delete parsed.values.debug;
  const [min, max] = cmd.args ?? [0, 0];
  if (cmd.passThroughAfterDashDash && parsed.positionals.length > max) {
    io.stderr.write(`ERROR: unexpected argument "${parsed.positionals[max]}"${passHint}`);
    return 1;
  }
  parsed.positionals.push(...verbatim);
  const counted = cmd.passThroughAfterDashDash
    ? parsed.positionals.length - verbatim.length
    : parsed.positionals.length;
  if (counted < min || counted > max) {
    io.stderr.write(
      `ERROR: ${counted < min ? 'missing argument' : `unexpected argument "${parsed.positionals[max]}"`}\n\n${commandHelp(program, cmd)}`,
    );
    return 1;
  }
  try {
    if (parsed.values.format === 'yaml') await (await import('./format')).loadYaml();
    return (await cmd.run({ ...io, env, ...parsed })) ?? 0;
  } catch (e) {
    // Ctrl-C at a prompt: the shell's convention (128 + SIGINT), no message.
    if ((e as { interrupted?: boolean })?.interrupted) return INTERRUPTED_EXIT;
    io.stderr.write(`${formatError(e, env)}\n`);
    return cmd.errorExitCode ?? 1;
  }
}

function versionCommand(program: Program): Command {
  return {
    path: ['version'],
    summary: `Print the version of ${program.name}.`,
    options: { format: formatOption },
    run: async (ctx) => {
      const v = ctx.values.format;
      if (v !== 'text' && v !== 'json' && v !== 'yaml') {
        throw Object.assign(new Error(`invalid --format "${String(v)}": expected text, json or yaml`), {
          name: 'WardenError',
        });
      }
      if (v === 'text') {
        ctx.stdout.write(`${program.name} v${program.version} node ${process.version}\n`);
      } else {
        const data = { version: program.version, node: process.version };
        ctx.stdout.write(
          v === 'json'
            ? `${JSON.stringify(data, null, 2)}\n`
            : `version: ${data.version}\nnode: ${data.node}\n`,
        );
      }
      return 0;
    },
  };
}

function completionCommand(program: Program): Command {
  return {
    path: ['completion'],
    summary: `Print a shell completion script for ${program.name} (bash, zsh or fish).`,
    usage: 'completion bash|zsh|fish',
    details:
      'Examples:\n' +
      `  source <(${program.name} completion bash)            # bash, this shell\n` +
      `  ${program.name} completion zsh > "\${fpath[1]}/_${program.name}"   # zsh\n` +
      `  ${program.name} completion fish > ~/.config/fish/completions/${program.name}.fish`,
    args: [1, 1],
    run: async (ctx) => {
      const { completionScript } = await import('./completion');
      ctx.stdout.write(completionScript(program, ctx.positionals[0]!));
      return 0;
    },
  };
}

/** 128 + SIGINT: what a shell reports for a program stopped by Ctrl-C. */
export const INTERRUPTED_EXIT = 130;

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest candidates to `word` (typos and prefixes), best first. */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const max = Math.max(2, Math.floor(word.length / 3));
  return [...new Set(candidates)]
    .map((c) => ({ c, d: c.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, c) }))
    .filter(({ d }) => d <= max)
    .sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : 1))
    .map(({ c }) => c);
}

function didYouMean(word: string, candidates: readonly string[], show: (c: string) => string): string {
  const best = suggest(word, candidates)[0];
  return best ? `; did you mean "${show(best)}"?` : '';
}

/**
 * The first problem with the flags in `args` (an unknown flag, a value missing or given to a
 * switch), as a message with a suggestion; undefined when they are fine. node:util's parser
 * would say the same in its own words, with a hint about positionals that confuses more than
 * it helps.
 */
export function checkFlags(args: readonly string[], options: Record<string, OptionSpec>): string | undefined {
  const byShort = new Map(
    Object.entries(options).flatMap(([n, o]) => (o.short ? [[o.short, n] as const] : [])),
  );
  const known = Object.keys(options);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (!a.startsWith('-') || a === '-') continue;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const o = options[name];
      if (!o) {
        const s = suggest(name, known)[0];
        return `unknown flag --${name}${s ? `; did you mean --${s}?` : ''}`;
      }
      if (o.type === 'boolean' && eq >= 0) return `flag --${name} takes no value (give --${name} alone)`;
      if (o.type === 'string' && eq < 0) {
        if (i + 1 >= args.length) return `flag --${name} needs a value: --${name}=${o.value ?? 'VALUE'}`;
        i++;
      }
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const name = byShort.get(a[j]!);
      if (!name) return `unknown flag -${a[j]}`;
      if (options[name]!.type === 'string') {
        if (j === a.length - 1) {
          if (i + 1 >= args.length)
            return `flag -${a[j]} needs a value: -${a[j]} ${options[name]!.value ?? 'VALUE'}`;
          i++;
        }
        break;
      }
    }
  }
  return undefined;
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

/**
 * The items of a listing the proxy sent (`wsh db ls`, `wsh kube ls`), each checked against
 * `schema`: a malformed one is WARDEN_ERR_CONNECTION ("sent a malformed <what>").
 */
export function parseListing<T>(items: unknown[], schema: z.ZodType<T>, proxy: string, what: string): T[] {
  return items.map((item) => {
    const parsed = schema.safeParse(item);
    if (!parsed.success)
      throw new WardenError('WARDEN_ERR_CONNECTION', `the proxy at ${proxy} sent a malformed ${what}`);
    return parsed.data;
  });
}

/** Resolves at the first Ctrl+C (SIGINT) or SIGTERM: how a long-running command (a local proxy or tunnel) waits to stop. */
export function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function formatError(e: unknown, env: NodeJS.ProcessEnv): string {
  // Checked by shape, not instanceof: this module must not load @warden/api, so `--help` stays fast.
  if (env.WARDEN_DEBUG) {
    const code = (e as { code?: unknown })?.code;
    return `ERROR: ${typeof code === 'string' ? `[${code}] ` : ''}${(e as Error)?.stack ?? String(e)}`;
  }
  if ((e as Error)?.name === 'WardenError') return `ERROR: ${(e as Error).message}`;
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

/** `-i/--identity FILE` of wsh and wctl: act with an identity file (a bot's) instead of a profile. */
export const identityOption: OptionSpec = {
  type: 'string',
  short: 'i',
  value: 'FILE',
  help: "act with this identity file (a bot's, written by `wbot start`) instead of the `wsh login` profile",
};

export const formatOption: OptionSpec = {
  type: 'string',
  value: 'text|json|yaml',
  default: 'text',
  help: 'output format',
};
