/** `wctl lock`. */
import { parseDuration, type rpc, WardenError } from '@warden/api';
import type { z } from 'zod';
import { type CommandContext, str } from '../command';
import { formatData, parseFormat } from '../format';
import { openSession, type Session } from './identity';

export async function runLock(ctx: CommandContext): Promise<number> {
  const v = ctx.values;
  const target = {
    user: str(v, 'user'),
    role: str(v, 'role'),
    login: str(v, 'login'),
    node: str(v, 'node'),
    device: str(v, 'device'),
  };
  if (!Object.values(target).some(Boolean)) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'a lock needs a target: --user, --role, --login, --node or --device',
    );
  }
  const ttl = str(v, 'ttl');
  const expires = str(v, 'expires');
  if (ttl && expires) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use --ttl or --expires, not both');
  if (expires && Number.isNaN(Date.parse(expires))) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid --expires "${expires}": expected an RFC3339 time`,
    );
  }
  parseFormat(v.format);
  const session = openSession(ctx);
  const res = await session.api.createLock({
    target: Object.fromEntries(Object.entries(target).filter(([, x]) => x)),
    message: str(v, 'message'),
    ttl_ms: ttl ? parseDuration(ttl, '--ttl') : undefined,
    expires: expires ? new Date(expires).toISOString() : undefined,
  });
  await printLockCreated(ctx, res, session);
  return 0;
}

/**
 * `Created a lock with name "…".` (text), or the lock resource itself (json/yaml); on stderr
 * why it may have no effect (device locks).
 */
export async function printLockCreated(
  ctx: CommandContext,
  res: z.infer<typeof rpc.CreateLockResponse>,
  session: Session,
): Promise<void> {
  const format = parseFormat(ctx.values.format);
  if (format === 'text') ctx.stdout.write(`Created a lock with name "${res.name}".\n`);
  else ctx.stdout.write(formatData((await session.api.getResource('lock', res.name)).resource, format));
  for (const w of res.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
}
