/** `wctl users add|ls|rm|reset`. */
import { type rpc, WardenError } from '@warden/api';
import { type CommandContext, list } from '../command';
import { formatData, parseFormat, table } from '../format';
import { openSession } from './identity';

function printInvite(ctx: CommandContext, inv: rpc.InviteResponse, verb: string): void {
  const format = parseFormat(ctx.values.format);
  if (format !== 'text') {
    ctx.stdout.write(formatData(inv, format));
    return;
  }
  const left = Math.round((Date.parse(inv.expires) - Date.now()) / 60_000);
  ctx.stdout.write(
    `User "${inv.user}" has been ${verb}. Share this invite token with them; it works once and expires in ` +
      `${left >= 60 ? `${Math.round(left / 60)}h` : `${left}m`} (${inv.expires}):\n\n` +
      `  ${inv.token}\n\nThey sign up with:\n\n  ${inv.signup_command}\n` +
      (inv.signup_url ? `\nor in a browser:\n\n  ${inv.signup_url}\n` : ''),
  );
}

export async function runUsersAdd(ctx: CommandContext): Promise<number> {
  parseFormat(ctx.values.format);
  const roles = list(ctx.values, 'roles');
  if (roles.length === 0)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--roles is required, e.g. --roles=access,editor');
  const { api } = openSession(ctx);
  const inv = await api.addUser({ name: ctx.positionals[0]!, roles, logins: list(ctx.values, 'logins') });
  printInvite(ctx, inv, 'created');
  return 0;
}

export async function runUsersReset(ctx: CommandContext): Promise<number> {
  parseFormat(ctx.values.format);
  const { api } = openSession(ctx);
  printInvite(ctx, await api.resetUser(ctx.positionals[0]!), 'reset');
  return 0;
}

export async function runUsersRm(ctx: CommandContext): Promise<number> {
  const { api } = openSession(ctx);
  await api.deleteResource('user', ctx.positionals[0]!);
  ctx.stdout.write(`User "${ctx.positionals[0]}" has been deleted\n`);
  return 0;
}

interface UserLike {
  metadata?: { name?: string };
  spec?: { roles?: string[]; traits?: Record<string, string[]> };
}

export async function runUsersLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const { api } = openSession(ctx);
  const { items } = await api.listResources('user');
  if (format !== 'text') {
    ctx.stdout.write(formatData(items, format));
    return 0;
  }
  if (items.length === 0) {
    ctx.stdout.write('No users found\n');
    return 0;
  }
  const rows = (items as UserLike[]).map((u) => [
    u.metadata?.name ?? '',
    (u.spec?.roles ?? []).join(','),
    (u.spec?.traits?.logins ?? []).join(','),
  ]);
  ctx.stdout.write(table(['User', 'Roles', 'Logins'], rows));
  return 0;
}
