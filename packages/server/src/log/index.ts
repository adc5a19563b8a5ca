/**
 * The daemon's logger: pino for JSON lines, or a compact text format for humans. Secrets are
 * redacted by field name before anything is written (allow-list by omission: any field whose
 * name looks like a secret is replaced), so a careless `log.info({ body })` cannot leak a
 * password, token or key.
 * Who may import: `bin/` creates it; everything else receives a `Logger`.
 */
import { pino } from 'pino';

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type LogSeverity = 'debug' | 'info' | 'warn' | 'error';

const SECRET_NAME = /pass(word)?|secret|token|otp|private|key_?pem|authorization|cookie/i;
const LEVELS: Record<LogSeverity, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** A copy of `value` with secret-looking fields replaced by "[redacted]" (depth-limited). */
export function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    return {
      type: value.name,
      message: value.message,
      ...((value as { code?: string }).code && { code: (value as { code?: string }).code }),
    };
  }
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = SECRET_NAME.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

export function createLogger(opts: {
  severity: LogSeverity;
  format: 'text' | 'json';
  stream?: NodeJS.WritableStream;
  component?: string;
}): Logger {
  const stream = opts.stream ?? process.stderr;
  if (opts.format === 'json') {
    // ISO 8601 times and level names ("time":"2026-…Z","level":"info"), as log shippers expect.
    const p = pino(
      {
        level: opts.severity,
        base: opts.component ? { component: opts.component } : {},
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      stream as never,
    );
    // The level is asked before redacting: a debug line in a hot path (one per session a lock
    // ends) then costs a comparison, not a copy of its fields.
    const line = (level: LogSeverity) => (o: object, m?: string) => {
      if (p.isLevelEnabled(level)) p[level](redact(o) as object, m);
    };
    return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
  }
  const min = LEVELS[opts.severity];
  const line = (level: LogSeverity) => (o: object, m?: string) => {
    if (LEVELS[level] < min) return;
    const fields = Object.entries(redact(o) as Record<string, unknown>)
      .map(
        ([k, v]) =>
          `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`,
      )
      .join(' ');
    stream.write(
      `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${m ?? ''}${fields ? ` ${fields}` : ''}\n`,
    );
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
