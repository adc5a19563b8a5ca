/**
 * SSH errors as the user reads them, in one place. A refusal (by the proxy, or a channel the
 * node would not open) reads like OpenSSH/Go clients print it:
 *   ssh: rejected: administratively prohibited (<reason>)
 * Who may import: this folder (index.ts re-exports). Tested by errors.test.ts.
 */
import { type ErrorCode, isAccessDenial, WardenError } from '@warden/api';

/** RFC 4254 §5.1 channel open failure reason codes, named as OpenSSH and Go name them. */
const OPEN_FAILURE_REASONS: Record<number, string> = {
  1: 'administratively prohibited',
  2: 'connect failed',
  3: 'unknown channel type',
  4: 'resource shortage',
};

/** `ssh: rejected: administratively prohibited (<reason>)` as a WARDEN_ERR_ACCESS_DENIED. */
export function sshRejected(reason: string, code: ErrorCode = 'WARDEN_ERR_ACCESS_DENIED'): WardenError {
  return new WardenError(code, `ssh: rejected: administratively prohibited (${reason})`);
}

/**
 * A channel open failure from ssh2 (`err.reason` is the RFC 4254 code, the message ends with
 * the server's description) as a WardenError; other errors pass through unchanged.
 */
export function channelError(e: unknown): unknown {
  const err = e as Error & { reason?: unknown };
  const m = /^\(SSH\) Channel open failure: ?(.*)$/s.exec(err?.message ?? '');
  if (!m) return e;
  const code = typeof err.reason === 'number' ? err.reason : 0;
  const description = m[1] || 'no reason given';
  if (code === 1) return sshRejected(description);
  const name = OPEN_FAILURE_REASONS[code] ?? `reason ${code}`;
  return new WardenError('WARDEN_ERR_CONNECTION', `ssh: rejected: ${name} (${description})`);
}

/** Errors from the proxy (dialNode): denials (by code) become `ssh: rejected: …`; others pass through. */
export function proxyError(e: unknown): unknown {
  if (isAccessDenial(e)) {
    if (e.message.startsWith('ssh: rejected:')) return e;
    return sshRejected(e.message, e.code);
  }
  return e;
}
