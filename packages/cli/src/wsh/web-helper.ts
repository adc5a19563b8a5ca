/**
 * `wsh device web-helper [--install]` and `wsh device web-auth LINK`: browser device trust on
 * this machine (DESIGN §7; the protocol is in @warden/client's devicetrust/web-helper.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { WardenError } from '@warden/api';
import { ProfileStore, parseWebAuthLink, proveWebDevice, startWebHelper, wardenHome } from '@warden/client';
import type { CommandContext } from '../command';

export async function runWebHelper(ctx: CommandContext): Promise<number> {
  if (ctx.values.install) return install(ctx);
  const store = new ProfileStore(wardenHome(ctx.env));
  const stamp = () => new Date().toISOString();
  const helper = await startWebHelper({
    store,
    env: ctx.env,
    log: (line) => ctx.stderr.write(`${stamp()} ${line}\n`),
  });
  ctx.stdout.write(
    `Device helper listening on 127.0.0.1:${helper.port} for the Web UI of the proxies wsh is logged in to.\n` +
      'Leave it running; stop it with Ctrl-C.\n',
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await helper.close();
  return 0;
}

export async function runWebAuth(ctx: CommandContext): Promise<number> {
  const { proxy, challenge } = parseWebAuthLink(ctx.positionals[0]!);
  const store = new ProfileStore(wardenHome(ctx.env));
  const profile = store.load(proxy);
  if (!profile || profile.proxy !== proxy) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `wsh is not logged in to ${proxy}: run wsh login --proxy=${proxy}`,
    );
  }
  const { device } = await proveWebDevice(profile, challenge, { env: ctx.env });
  ctx.stdout.write(
    `Device "${device.asset_tag}" proved for ${profile.user}'s browser session on ${proxy}: go back to the browser.\n`,
  );
  return 0;
}

/** Writes the systemd user unit and the wsh:// handler for the wsh that runs this command. */
function install(ctx: CommandContext): number {
  const home = ctx.env.HOME ?? homedir();
  const config = ctx.env.XDG_CONFIG_HOME || join(home, '.config');
  const data = ctx.env.XDG_DATA_HOME || join(home, '.local', 'share');
  const wsh = process.argv[1] ?? 'wsh';
  const exec = `${process.execPath} ${wsh}`;
  const unit = join(config, 'systemd', 'user', 'wsh-web-helper.service');
  const desktop = join(data, 'applications', 'wsh-device-trust.desktop');
  const envLines = ['WARDEN_HOME', 'WARDEN_TPM', 'WARDEN_DEVICE_CACHE']
    .filter((k) => ctx.env[k])
    .map((k) => `Environment=${k}=${ctx.env[k]}\n`)
    .join('');
  write(
    unit,
    '[Unit]\n' +
      'Description=Warden device helper for the Web UI (wsh device web-helper)\n\n' +
      '[Service]\n' +
      `ExecStart=${exec} device web-helper\n` +
      envLines +
      'Restart=on-failure\n' +
      'RestartSec=5\n\n' +
      '[Install]\n' +
      'WantedBy=default.target\n',
  );
  write(
    desktop,
    '[Desktop Entry]\n' +
      'Type=Application\n' +
      'Name=Warden device trust\n' +
      `Exec=${exec} device web-auth %u\n` +
      'MimeType=x-scheme-handler/wsh;\n' +
      'NoDisplay=true\n' +
      'Terminal=false\n',
  );
  ctx.stdout.write(
    `Wrote ${unit}\nWrote ${desktop}\n\nEnable them with:\n\n` +
      '  systemctl --user daemon-reload && systemctl --user enable --now wsh-web-helper\n' +
      '  xdg-mime default wsh-device-trust.desktop x-scheme-handler/wsh\n',
  );
  return 0;
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode: 0o644 });
}
