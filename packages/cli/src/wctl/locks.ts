/** `wctl lock`. */
import { parseDuration, type rpc, WardenError } from '@warden/api';
import type { z } from 'zod';
import { type CommandContext, str } from '../command';
import { openSession } from './identity';

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
  const { api } = openSession(ctx);
  const res = await api.createLock({
    target: Object.fromEntries(Object.entries(target).filter(([, x]) => x)),
    message: str(v, 'message'),
    ttl_ms: ttl ? parseDuration(ttl, '--ttl') : undefined,
    expires: expires ? new Date(expires).toISOString() : undefined,
  });
  printLockCreated(ctx, res);
  return 0;
}

/** `Created a lock with name "…".`, and on stderr why it may have no effect (device locks). */
export function printLockCreated(ctx: CommandContext, res: z.infer<typeof rpc.CreateLockResponse>): void {
  ctx.stdout.write(`Created a lock with name "${res.name}".\n`);
  for (const w of res.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
}
