/** `wctl audit search`. */
import { tryParseDuration, WardenError } from '@warden/api';
import { type CommandContext, list, str } from '../command';
import { formatData, parseFormat, table } from '../format';
import { openSession } from './identity';

/** RFC3339, or a duration meaning "that long ago". */
function parseTime(v: string | undefined, flag: string): string | undefined {
  if (!v) return undefined;
  const ago = tryParseDuration(v);
  if (ago !== undefined) return new Date(Date.now() - ago).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t)) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid ${flag} "${v}": expected RFC3339 time or a duration like 1h`,
    );
  }
  return new Date(t).toISOString();
}

export async function runAuditSearch(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const limit = Number(str(ctx.values, 'limit') ?? '500');
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--limit must be a whole number from 1 to 10000');
  }
  const { api } = openSession(ctx);
  const { events } = await api.searchAudit({
    from: parseTime(str(ctx.values, 'from'), '--from'),
    to: parseTime(str(ctx.values, 'to'), '--to'),
    type: list(ctx.values, 'type'),
    user: str(ctx.values, 'user'),
    limit,
  });
  if (format !== 'text') {
    ctx.stdout.write(formatData(events, format));
    return 0;
  }
  if (events.length === 0) {
    ctx.stdout.write('No events found\n');
    return 0;
  }
  ctx.stdout.write(auditTable(events));
  return 0;
}

/**
 * What an event is about, as people name it: a node by its host name (its ID is in
 * --format=json), anything else by its name; `kind/name`.
 */
function resourceCell(e: Record<string, unknown>): string {
  const r = e.resource as { kind?: unknown; name?: unknown; hostname?: unknown } | undefined;
  if (!r || typeof r !== 'object') return '';
  const shown = typeof r.hostname === 'string' && r.hostname ? r.hostname : r.name;
  return `${String(r.kind ?? '')}/${String(shown ?? '')}`;
}

/** The audit log as a table: one row per event; fields without a column go to Details. */
export function auditTable(events: Record<string, unknown>[], maxWidth?: number): string {
  const known = new Set(['id', 'code', 'type', 'time', 'success', 'user', 'addr', 'error', 'resource']);
  const rows = events.map((e) => {
    const hostname = (e.resource as { hostname?: unknown } | undefined)?.hostname;
    return [
      String(e.time ?? ''),
      String(e.type ?? ''),
      String(e.code ?? ''),
      String(e.user ?? ''),
      resourceCell(e),
      e.success === false ? 'failure' : 'success',
      [
        e.error ? `error=${String(e.error)}` : '',
        ...Object.entries(e)
          // `node` repeats the resource's host name (older events have only the ID there).
          .filter(([k, v]) => !known.has(k) && !(k === 'node' && v === hostname))
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`),
      ]
        .filter(Boolean)
        .join(' '),
    ];
  });
  return table(['Time', 'Type', 'Code', 'User', 'Resource', 'Outcome', 'Details'], rows, maxWidth);
}
