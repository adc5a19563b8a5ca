/**
 * `wsh device web-helper [--install]` and `wsh device web-auth LINK`: browser device trust on
 * this machine (DESIGN §7; the protocol is in @warden/client's devicetrust/web-helper.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { WardenError, web } from '@warden/api';
import {
  type LoadedProfile,
  ProfileStore,
  parseWebAuthLink,
  proveWebDevice,
  startWebHelper,
  WEB_HELPER_SERVICE,
  wardenHome,
  webHelperHomeId,
} from '@warden/client';
import { type CommandContext, str } from '../command';

/** How often a helper started by `wsh login` checks that wsh is still logged in. */
const LOGOUT_CHECK_MS = 2000;

export async function runWebHelper(ctx: CommandContext): Promise<number> {
  if (ctx.values.install) return install(ctx);
  const home = wardenHome(ctx.env);
  const store = new ProfileStore(home);
  const stamp = () => new Date().toISOString();
  const helper = await startWebHelper({
    store,
    env: ctx.env,
    homeId: webHelperHomeId(home),
    log: (line) => ctx.stderr.write(`${stamp()} ${line}\n`),
  });
  const untilLogout = str(ctx.values, 'until-logout');
  ctx.stdout.write(
    `Device helper listening on 127.0.0.1:${helper.port} for the Web UI of the proxies wsh is logged in to.\n` +
      (untilLogout
        ? `It stops when wsh logs out of ${untilLogout} or its certificates expire.\n`
        : 'Leave it running; stop it with Ctrl-C.\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (untilLogout) {
      const timer = setInterval(() => {
        const p = store.load(untilLogout);
        if (!p || !(Date.parse(p.expires) > Date.now())) {
          ctx.stderr.write(`${stamp()} wsh is no longer logged in to ${untilLogout}: stopping\n`);
          clearInterval(timer);
          resolve();
        }
      }, LOGOUT_CHECK_MS);
    }
  });
  await helper.close();
  return 0;
}

/** The port of a running helper that serves this wsh home, if any (`GET /v1/status`). */
async function runningHelper(homeId: string, env: NodeJS.ProcessEnv): Promise<number | undefined> {
  for (const port of web.webHelperPorts(env)) {
    const answer = await new Promise<string | undefined>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/status',
          headers: { host: `127.0.0.1:${port}` },
          timeout: 1000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (text.length < 4096) text += c;
          });
          res.on('end', () => resolve(res.statusCode === 200 ? text : undefined));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end();
    });
    if (!answer) continue;
    try {
      const v = JSON.parse(answer) as { service?: unknown; home?: unknown };
      if (v.service === WEB_HELPER_SERVICE && v.home === homeId) return port;
    } catch {
      // Something else on that port: look further.
    }
  }
  return undefined;
}

/**
 * `wsh login` when the user's Web UI sessions need a trusted device: starts
 * `wsh device web-helper` in the background unless one already serves this wsh home. The
 * helper logs to `<WARDEN_HOME>/web-helper.log` and stops once wsh logs out of the proxy.
 * Never fails the login: a helper that cannot start is a warning that says what to do.
 */
export async function ensureWebHelper(ctx: CommandContext, profile: LoadedProfile): Promise<void> {
  const home = wardenHome(ctx.env);
  const homeId = webHelperHomeId(home);
  const running = await runningHelper(homeId, ctx.env);
  if (running !== undefined) {
    ctx.stdout.write(`Device helper for the Web UI: running on 127.0.0.1:${running}.\n`);
    return;
  }
  const log = join(home, 'web-helper.log');
  const warn = (why: string) =>
    ctx.stderr.write(
      `WARNING: could not start the device helper for the Web UI (${why}); run \`wsh device web-helper\` ` +
        'yourself to make browser sessions device-trusted.\n',
    );
  let fd: number;
  try {
    fd = openSync(log, 'a', 0o600);
  } catch (e) {
    warn((e as Error).message);
    return;
  }
  const script = process.argv[1];
  const child = spawn(
    process.execPath,
    [...(script ? [script] : []), 'device', 'web-helper', `--until-logout=${profile.proxy}`],
    { detached: true, stdio: ['ignore', fd, fd], env: ctx.env },
  );
  closeSync(fd);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', () => {
    exited = true;
  });
  child.unref();
  // Wait until it answers (it may also find every port taken and stop).
  const until = Date.now() + 10_000;
  while (!exited && Date.now() < until) {
    const port = await runningHelper(homeId, ctx.env);
    if (port !== undefined) {
      ctx.stdout.write(
        `Device helper for the Web UI: started on 127.0.0.1:${port} (pid ${child.pid}; log ${log}); ` +
          'it stops at `wsh logout`.\n',
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  warn(exited ? `it stopped; see ${log}` : 'it did not answer in time');
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
