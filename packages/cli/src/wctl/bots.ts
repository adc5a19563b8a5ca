/** `wctl bots add|ls|rm|lock` and `wctl tokens ls|rm`. */
import { type rpc, WardenError } from '@warden/api';
import { type CommandContext, list, str } from '../command';
import { formatData, parseFormat, table } from '../format';
import { openSession } from './identity';

function inWords(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m >= 60 ? `${Math.round(m / 60)}h` : `${Math.max(m, 1)}m`;
}

export async function runBotsAdd(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const roles = list(ctx.values, 'roles');
  if (roles.length === 0)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--roles is required, e.g. --roles=access');
  const { api } = openSession(ctx);
  const ttl = str(ctx.values, 'ttl');
  const tokenTtl = str(ctx.values, 'token-ttl');
  const res: rpc.BotTokenResponse = await api.addBot({
    name: ctx.positionals[0]!,
    roles,
    logins: list(ctx.values, 'logins'),
    ...(ttl ? { ttl } : {}),
    ...(tokenTtl ? { token_ttl: tokenTtl } : {}),
  });
  if (format !== 'text') {
    ctx.stdout.write(formatData(res, format));
    return 0;
  }
  ctx.stdout.write(
    `Bot "${res.bot}" has been created. Its join token works once and expires in ` +
      `${inWords(Date.parse(res.expires) - Date.now())} (${res.expires}):\n\n  ${res.token}\n\n` +
      `Run the bot on the machine that needs the identity (a CI runner, a server):\n\n  ${res.join_command}\n\n` +
      'It keeps certificates fresh in the destination; restarts need no new token while they are valid.\n',
  );
  return 0;
}

interface BotRow {
  name?: string;
  roles?: string[];
  logins?: string[];
  ttl?: string;
  created_by?: string;
  created?: string;
}

export async function runBotsLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const { api } = openSession(ctx);
  const { items } = await api.listBots();
  if (format !== 'text') {
    ctx.stdout.write(formatData(items, format));
    return 0;
  }
  if (items.length === 0) {
    ctx.stdout.write('No bots found; add one with `wctl bots add NAME --roles=…`\n');
    return 0;
  }
  const rows = (items as BotRow[]).map((b) => [
    b.name ?? '',
    (b.roles ?? []).join(','),
    (b.logins ?? []).join(','),
    b.ttl ?? '',
    b.created_by ?? '',
  ]);
  ctx.stdout.write(table(['Bot', 'Roles', 'Logins', 'Cert TTL', 'Created by'], rows));
  return 0;
}

export async function runBotsRm(ctx: CommandContext): Promise<number> {
  const { api } = openSession(ctx);
  const name = ctx.positionals[0]!;
  await api.removeBot(name);
  ctx.stdout.write(
    `Bot "${name}" has been deleted; its certificates stop renewing (\`wctl bots lock ${name}\` ends its sessions now)\n`,
  );
  return 0;
}

/** A lock on the bot (`wctl lock --user=NAME`): renewal stops and its live sessions end. */
export async function runBotsLock(ctx: CommandContext): Promise<number> {
  const { runLock } = await import('./locks');
  return runLock({ ...ctx, values: { ...ctx.values, user: ctx.positionals[0]! } });
}

export async function runTokensLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const { api } = openSession(ctx);
  const { items } = await api.listTokens();
  if (format !== 'text') {
    ctx.stdout.write(formatData(items, format));
    return 0;
  }
  if (items.length === 0) {
    ctx.stdout.write('No open tokens\n');
    return 0;
  }
  ctx.stdout.write(
    table(
      ['ID', 'Type', 'For', 'Expires'],
      items.map((t) => [t.id, t.type, t.for, t.expires]),
    ),
  );
  return 0;
}

export async function runTokensRm(ctx: CommandContext): Promise<number> {
  const { api } = openSession(ctx);
  const { removed } = await api.deleteToken(ctx.positionals[0]!);
  ctx.stdout.write(`Removed the ${removed.type} token ${removed.id} for "${removed.for}"\n`);
  return 0;
}
