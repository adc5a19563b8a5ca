/**
 * Man pages (roff, section 1) generated from the same command table and help text as
 * `--help`: `wsh.1` and one page per command (`wsh-ssh.1`, `wctl-users-add.1`). `npm run
 * build` writes them under dist/man (scripts/man.ts); read one with `man -l dist/man/wsh-ssh.1`.
 */
import { allOptions, type Command, type Program } from './command';

/** Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function header(name: string, program: Program): string {
  return `.TH ${name.toUpperCase()} 1 "" "${program.name} ${program.version}" "Warden"\n`;
}

function envSection(program: Program): string {
  if (!program.env?.length) return '';
  return `.SH ENVIRONMENT\n${program.env.map(([n, h]) => `.TP\n.B ${roff(n)}\n${roff(h)}\n`).join('')}`;
}

function pageName(program: Program, cmd: Pick<Command, 'path'>): string {
  return [program.name, ...cmd.path].join('-');
}

/** The page for one command. */
export function commandPage(program: Program, cmd: Command): string {
  const opts = allOptions(program, cmd);
  const options = Object.entries(opts)
    .map(([name, o]) => {
      const flag = `${o.short ? `\\-${o.short}, ` : ''}\\-\\-${roff(name)}${o.type === 'string' ? `=\\fI${roff(o.value ?? 'VALUE')}\\fR` : ''}`;
      const dflt = o.default !== undefined && o.default !== false ? ` (default ${o.default})` : '';
      return `.TP\n.B ${flag}\n${roff(o.help + dflt)}\n`;
    })
    .join('');
  return [
    header(pageName(program, cmd), program),
    `.SH NAME\n${roff(`${pageName(program, cmd)} - ${cmd.summary}`)}\n`,
    `.SH SYNOPSIS\n.B ${roff(`${program.name} ${cmd.usage ?? cmd.path.join(' ')}`)}\n`,
    `.SH DESCRIPTION\n${roff(cmd.summary)}\n`,
    cmd.details ? `.PP\n.nf\n${roff(cmd.details.trimEnd())}\n.fi\n` : '',
    `.SH OPTIONS\n${options}`,
    envSection(program),
    `.SH SEE ALSO\n.BR ${program.name} (1)\n`,
  ].join('');
}

/** The program's overview page: every command with its summary. */
export function programPage(program: Program): string {
  return [
    header(program.name, program),
    `.SH NAME\n${roff(`${program.name} - ${program.summary}`)}\n`,
    `.SH SYNOPSIS\n.B ${program.name}\n.I COMMAND\n[\\fIFLAGS\\fR]\n`,
    `.SH DESCRIPTION\n${roff(program.summary)}\nEvery command has \\fB\\-\\-help\\fR; \\fB${program.name} completion bash|zsh|fish\\fR prints a shell completion script.\n`,
    `.SH COMMANDS\n${program.commands.map((c) => `.TP\n.BR ${pageName(program, c)} (1)\n${roff(c.summary)}\n`).join('')}`,
    envSection(program),
  ].join('');
}

/** Every page of a program: file name → roff text. */
export function manPages(program: Program): Map<string, string> {
  const pages = new Map([[`${program.name}.1`, programPage(program)]]);
  for (const cmd of program.commands) pages.set(`${pageName(program, cmd)}.1`, commandPage(program, cmd));
  return pages;
}
