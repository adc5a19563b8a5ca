/** `wsh status` and `wsh logout`. */
import { formatDuration, parseSshCertificate } from '@warden/api';
import { type LoadedProfile, normalizeProxy, ProfileStore, wardenHome } from '@warden/client';
import { type CommandContext, str } from '../command';
import { formatData, parseFormat } from '../format';

/**
 * requireProfile (../profile), but the identity-file reader (the bot client, zod) loads only
 * for `-i`: `wsh status` reads local files and must start fast (bench/cli.ts).
 */
async function statusProfile(ctx: CommandContext): Promise<LoadedProfile> {
  if (str(ctx.values, 'identity')) return (await import('../profile')).requireProfile(ctx);
  return new ProfileStore(wardenHome(ctx.env)).require();
}

export interface StatusView {
  proxy: string;
  cluster: string;
  user: string;
  roles: string[];
  logins: string[];
  valid_until: string;
  valid: boolean;
  extensions: string[];
}

export function statusView(profile: LoadedProfile, now = Date.now()): StatusView {
  const cert = parseSshCertificate(profile.sshCert);
  const validBefore = Number(cert.validBefore) * 1000;
  return {
    proxy: profile.proxy,
    cluster: profile.cluster,
    user: cert.keyId,
    roles: profile.roles,
    logins: cert.validPrincipals,
    valid_until: new Date(validBefore).toISOString(),
    valid: validBefore > now,
    extensions: Object.keys(cert.extensions).sort(),
  };
}

export function printStatus(ctx: CommandContext, profile: LoadedProfile): void {
  const v = statusView(profile);
  const left = Date.parse(v.valid_until) - Date.now();
  const rows: [string, string][] = [
    ['Profile URL:', `https://${v.proxy}`],
    ['Logged in as:', v.user],
    ['Cluster:', v.cluster],
    ['Roles:', v.roles.join(', ') || '-'],
    ['Logins:', v.logins.join(', ') || '-'],
    ['Valid until:', `${v.valid_until} [${left > 0 ? `valid for ${formatDuration(left)}` : 'EXPIRED'}]`],
    ['Extensions:', v.extensions.join(', ')],
  ];
  ctx.stdout.write(
    `${rows.map(([k, val], i) => `${i === 0 ? '>' : ' '} ${k.padEnd(14)} ${val}`).join('\n')}\n`,
  );
}

export async function runStatus(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = await statusProfile(ctx);
  if (format === 'text') printStatus(ctx, profile);
  else ctx.stdout.write(formatData(statusView(profile), format));
  return 0;
}

export async function runLogout(ctx: CommandContext): Promise<number> {
  const proxy = str(ctx.values, 'proxy');
  const removed = new ProfileStore(wardenHome(ctx.env)).remove(proxy && normalizeProxy(proxy));
  ctx.stdout.write(removed ? `Logged out from ${removed}.\n` : 'Not logged in.\n');
  return 0;
}
