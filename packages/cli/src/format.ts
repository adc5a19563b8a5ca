/** Output for humans (tables) and machines (JSON, YAML). */

import { createRequire } from 'node:module';
import { WardenError } from '@warden/api';

type Yaml = typeof import('yaml');
let yaml: Yaml | undefined;

/**
 * Loads the YAML writer (about 250 kB of code that most commands never need); runProgram
 * awaits it for `--format=yaml`, so start-up stays fast for everything else.
 */
export async function loadYaml(): Promise<void> {
  const m = (await import('yaml')) as Yaml & { default?: Yaml };
  // yaml's Node build is CommonJS: bundled, its exports may sit under `default`.
  yaml ??= typeof m.stringify === 'function' ? m : m.default;
}

export type Format = 'text' | 'json' | 'yaml';

export function parseFormat(v: unknown): Format {
  if (v === undefined || v === 'text' || v === 'json' || v === 'yaml') return (v ?? 'text') as Format;
  throw new WardenError(
    'WARDEN_ERR_BAD_PARAMETER',
    `invalid --format "${String(v)}": expected text, json or yaml`,
  );
}

/**
 * The width tables must fit: the terminal's columns on a terminal, else `COLUMNS` when set;
 * undefined (no limit) for a pipe, so scripts get whole cells (or use --format=json).
 */
export function terminalWidth(
  out: { isTTY?: boolean; columns?: number } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  const c = out.isTTY && out.columns ? out.columns : Number(env.COLUMNS);
  return Number.isInteger(c) && c > 0 ? c : undefined;
}

/** Cuts `text` to `width` characters, ending with "…" when cut. */
function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** Labels as `k=v,k2=v2`, sorted by key (a listing's Labels column). */
export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/**
 * A plain-text table with a dashed rule under the header, columns padded to fit. With a
 * `maxWidth`, the widest columns are narrowed (cells cut with "…", headers kept) until a line
 * fits; the whole values stay available with --format=json.
 */
export function table(headers: string[], rows: string[][], maxWidth = terminalWidth()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  if (maxWidth !== undefined) {
    const total = () => widths.reduce((a, b) => a + b, 0) + widths.length - 1;
    const floor = headers.map((h) => Math.max(h.length, 8));
    while (total() > maxWidth) {
      // Narrow the widest column that may still shrink.
      let widest = -1;
      for (const [i, w] of widths.entries())
        if (w > floor[i]! && (widest < 0 || w > widths[widest]!)) widest = i;
      if (widest < 0) break;
      widths[widest] = Math.max(floor[widest]!, widths[widest]! - (total() - maxWidth));
    }
  }
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? cut(c, widths[i]!) : cut(c, widths[i]!).padEnd(widths[i]!)))
      .join(' ')
      .trimEnd();
  return `${[line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

export function formatData(data: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  // Not preloaded (a caller outside runProgram): load it synchronously.
  yaml ??= createRequire(import.meta.url)('yaml') as Yaml;
  return yaml.stringify(data, { lineWidth: 0 });
}
