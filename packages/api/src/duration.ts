/**
 * Durations as users write them: Go-style `1h30m`, `45s`, `8h`, `500ms`, `2d` (days are a
 * convenience, 24 h). Used by role options, CLI flags (`--ttl`) and config.
 *
 * @example parseDuration('1h30m') === 5_400_000
 */
import { WardenError } from './errors';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds in a duration string, or undefined when it isn't one. */
export function tryParseDuration(text: string): number | undefined {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return Number.isFinite(total) && total > 0 ? Math.round(total) : undefined;
}

/** Like tryParseDuration, but throws BAD_PARAMETER naming `what` (e.g. `--ttl`). */
export function parseDuration(text: string, what = 'duration'): number {
  const ms = tryParseDuration(text);
  if (ms === undefined) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid ${what} "${text}": expected a duration like 30m, 8h or 1h30m`,
    );
  }
  return ms;
}

/** `12h0m0s`-style text, as Go prints durations. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}
