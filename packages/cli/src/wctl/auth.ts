/** `wctl auth export` and `wctl status`. */
import { WardenError } from '@warden/api';
import { caPin } from '@warden/client';
import { type CommandContext, str } from '../command';
import { openSession } from './identity';

export async function runAuthExport(ctx: CommandContext): Promise<number> {
  const type = str(ctx.values, 'type');
  if (type !== 'user' && type !== 'host') {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--type must be "user" (TrustedUserCAKeys) or "host" (known_hosts)',
    );
  }
  const { api } = openSession(ctx);
  const res = await api.exportAuthority(type);
  ctx.stdout.write(`${res.line.trim()}\n`);
  return 0;
}

export async function runStatus(ctx: CommandContext): Promise<number> {
  const session = openSession(ctx);
  const ping = await session.api.ping();
  const rows: [string, string][] = [
    ['Cluster', ping.cluster_name],
    ['Version', ping.server_version],
    ['Proxy', ping.proxy_public_addr],
    ['Second factor', ping.auth.second_factor],
    ['Device trust', ping.auth.device_trust_mode],
    ['Acting as', session.who],
    ...ping.host_ca_pems.map((p): [string, string] => ['CA pin', caPin(p)]),
  ];
  ctx.stdout.write(`${rows.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join('\n')}\n`);
  return 0;
}
