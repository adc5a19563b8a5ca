/**
 * The goals of the benchmarks (issue 14) and how they are printed: each ratio with its goal
 * next to it, and one verdict line per benchmark. Shared by bench/*.ts only.
 *
 * @example
 *   const g = goal('pgbench -S -c4 vs pgbouncer', 0.93, { min: 1.0 });
 *   process.stdout.write(`${g.text}\n${verdict('bench:db', [g])}\n`);
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

export interface Goal {
  what: string;
  ratio: number;
  /** The ratio must be at least this (throughput). */
  min?: number;
  /** The ratio must be at most this (latency, time). */
  max?: number;
  met: boolean;
  /** `0.93× (goal ≥ 1.00×: not met)` */
  text: string;
}

/** A goal on a ratio (`unit` ×, the default) or on a plain figure (`unit` ' ms'…), shown with `digits` decimals. */
export function goal(
  what: string,
  ratio: number,
  bound: { min?: number; max?: number },
  unit = '×',
  digits = unit === '×' ? 2 : 1,
): Goal {
  const ok = Number.isFinite(ratio);
  const met =
    ok && (bound.min === undefined || ratio >= bound.min) && (bound.max === undefined || ratio <= bound.max);
  const want =
    bound.min !== undefined
      ? `≥ ${bound.min.toFixed(digits)}${unit}`
      : `≤ ${bound.max!.toFixed(digits)}${unit}`;
  const text = `${ok ? `${ratio.toFixed(digits)}${unit}` : '-'} (goal ${want}: ${met ? 'met' : 'not met'})`;
  return { what, ratio, ...bound, met, text };
}

/** `verdict (bench:db): met (4 of 4 goals)` or `… not met: a 0.62× (≥ 1.00×), …`. */
export function verdict(bench: string, goals: readonly Goal[]): string {
  if (goals.length === 0) return `verdict (${bench}): nothing measured`;
  const missed = goals.filter((g) => !g.met);
  if (missed.length === 0) return `verdict (${bench}): met (${goals.length} of ${goals.length} goals)`;
  return `verdict (${bench}): not met (${goals.length - missed.length} of ${goals.length} goals); missed: ${missed
    .map((g) => `${g.what} ${g.text.replace(/: not met\)$/, ')')}`)
    .join('; ')}`;
}

/**
 * CPU time (user + system, ms) a process used so far, from /proc; undefined elsewhere. With
 * `reaped`, also that of the children it waited for (sshd's per-connection processes, a
 * session's command).
 */
export function cpuMs(pid: number | undefined, reaped = false): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 (1-based) of the whole line, in clock ticks.
    const own = Number(fields[11]) + Number(fields[12]);
    const children = reaped ? Number(fields[13]) + Number(fields[14]) : 0;
    return ((own + children) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/** `load average 0.52, 1.10, 2.03` (1, 5, 15 minutes), printed next to figures. */
export function loadAverage(): string {
  return `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(', ')}`;
}
