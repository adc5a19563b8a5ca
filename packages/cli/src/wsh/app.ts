/**
 * `wsh apps ls`, `wsh app login|logout|config` and `wsh proxy app`: thin commands over the app
 * client in `@warden/client` (app certificates per profile, tunnels through the proxy, the
 * local plain listener).
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { WardenError } from '@warden/api';
import {
  type AppLogin,
  clientForProfile,
  type LoadedProfile,
  listAppLogins,
  loadAppLogin,
  removeAppLogins,
  saveAppLogin,
  startAppProxy,
} from '@warden/client';
import { type CommandContext, formatError, str, untilInterrupted } from '../command';
import { formatData, formatLabels, parseFormat, table } from '../format';
import { requireLiveProfile } from '../profile';

export async function runAppsLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = requireLiveProfile(ctx);
  const { items } = await clientForProfile(profile).listApps();
  if (format !== 'text') {
    ctx.stdout.write(formatData(items, format));
    return 0;
  }
  const logged = new Set(listAppLogins(profile).filter((n) => loadAppLogin(profile, n)));
  const rows = items.map((a) => [
    `${logged.has(a.name) ? '> ' : '  '}${a.name}`,
    a.description ?? '',
    a.public_addr,
    formatLabels(a.labels),
  ]);
  ctx.stdout.write(table(['  Application', 'Description', 'Public Address', 'Labels'], rows));
  return 0;
}

/** `--resolve` for curl when the proxy is an IP and the app name may not resolve in DNS. */
function curlResolve(profile: LoadedProfile, login: AppLogin): string[] {
  const url = new URL(login.uri);
  const at = profile.proxy.lastIndexOf(':');
  const host = profile.proxy.slice(0, at).replace(/^\[|\]$/g, '');
  if (!isIP(host)) return [];
  const port = url.port || '443';
  return [`--resolve ${url.hostname}:${port}:${host}`];
}

function curlCommand(profile: LoadedProfile, login: AppLogin): string {
  return [
    'curl',
    `--cacert ${join(profile.dir, 'host-cas.pem')}`,
    `--cert ${login.certPath}`,
    `--key ${join(profile.dir, 'key.pem')}`,
    ...curlResolve(profile, login),
    `${login.uri}/`,
  ].join(' ');
}

async function appLogin(ctx: CommandContext, profile: LoadedProfile, name: string): Promise<AppLogin> {
  const answer = await clientForProfile(profile).appLogin(name);
  for (const w of answer.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
  return saveAppLogin(profile, answer);
}

export async function runAppLogin(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  const profile = requireLiveProfile(ctx);
  const login = await appLogin(ctx, profile, name);
  ctx.stdout.write(
    `Logged in to app "${name}" until ${login.expires} (the app certificate ends with your login).\n\n` +
      `Open it through a local proxy (browsers, WebSockets):\n  wsh proxy app ${name} -p 8888   # then http://127.0.0.1:8888\n\n` +
      `Or use the certificate directly (e.g. with curl):\n  ${curlCommand(profile, login)}\n`,
  );
  return 0;
}

export async function runAppLogout(ctx: CommandContext): Promise<number> {
  const profile = requireLiveProfile(ctx);
  const name = ctx.positionals[0];
  const removed = removeAppLogins(profile, name);
  if (name && removed.length === 0)
    throw new WardenError('WARDEN_ERR_NOT_FOUND', `not logged in to app "${name}"`);
  ctx.stdout.write(
    removed.length === 0
      ? 'Not logged in to any app.\n'
      : `Logged out of ${removed.map((n) => `"${n}"`).join(', ')}.\n`,
  );
  return 0;
}

function requireLogin(profile: LoadedProfile, name: string): AppLogin {
  const login = loadAppLogin(profile, name);
  if (!login)
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `not logged in to app "${name}" (or it expired); run \`wsh app login ${name}\``,
    );
  return login;
}

const CONFIG_FORMATS = ['text', 'json', 'yaml', 'uri', 'ca', 'cert', 'key', 'curl'] as const;

export async function runAppConfig(ctx: CommandContext): Promise<number> {
  const format = str(ctx.values, 'format') ?? 'text';
  if (!(CONFIG_FORMATS as readonly string[]).includes(format))
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid --format "${format}": expected ${CONFIG_FORMATS.join(', ')}`,
    );
  const profile = requireLiveProfile(ctx);
  const logged = listAppLogins(profile).filter((n) => loadAppLogin(profile, n));
  const name = ctx.positionals[0] ?? (logged.length === 1 ? logged[0] : undefined);
  if (!name)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      logged.length === 0
        ? 'not logged in to any app; run `wsh app login NAME` first'
        : `name the app (logged in to: ${logged.join(', ')})`,
    );
  const login = requireLogin(profile, name);
  const info = {
    name,
    uri: login.uri,
    ca: join(profile.dir, 'host-cas.pem'),
    cert: login.certPath,
    key: join(profile.dir, 'key.pem'),
    expires: login.expires,
    curl: curlCommand(profile, login),
  };
  switch (format) {
    case 'uri':
    case 'ca':
    case 'cert':
    case 'key':
    case 'curl':
      ctx.stdout.write(`${info[format]}\n`);
      return 0;
    case 'json':
    case 'yaml':
      ctx.stdout.write(formatData(info, format));
      return 0;
  }
  const rows: [string, string][] = [
    ['Name', name],
    ['URI', info.uri],
    ['CA', info.ca],
    ['Cert', info.cert],
    ['Key', info.key],
    ['Expires', info.expires],
    ['Curl', info.curl],
  ];
  ctx.stdout.write(`${rows.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`).join('\n')}\n`);
  return 0;
}

export async function runProxyApp(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  const portText = str(ctx.values, 'port') ?? '0';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid --port "${portText}": expected 0 to 65535`);
  const profile = requireLiveProfile(ctx);
  // A fresh app login each time: the session starts with the current roles and device.
  const login = await appLogin(ctx, profile, name);
  const proxy = await startAppProxy({
    profile,
    login,
    port,
    onError: (e) => ctx.stderr.write(`${formatError(e, ctx.env)}\n`),
  });
  ctx.stdout.write(
    `Proxying connections to app "${name}" on ${proxy.url}\n` +
      `Open ${proxy.url}/ in your browser (or point curl or a WebSocket client at it).\n` +
      'Stop it with Ctrl+C.\n',
  );
  await untilInterrupted();
  await proxy.close();
  return 0;
}
