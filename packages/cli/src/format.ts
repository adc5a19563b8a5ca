/** Output for humans (tables) and machines (JSON, YAML). */

import { WardenError } from '@warden/api';
import { stringify } from 'yaml';

export type Format = 'text' | 'json' | 'yaml';

export function parseFormat(v: unknown): Format {
  if (v === undefined || v === 'text' || v === 'json' || v === 'yaml') return (v ?? 'text') as Format;
  throw new WardenError(
    'WARDEN_ERR_BAD_PARAMETER',
    `invalid --format "${String(v)}": expected text, json or yaml`,
  );
}

/** A plain-text table with a dashed rule under the header, columns padded to fit. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join(' ')
      .trimEnd();
  return `${[line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

export function formatData(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data, { lineWidth: 0 });
}
