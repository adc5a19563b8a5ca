/** `wsh signup` and `wsh login`: prompts around the client ceremonies. */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { parseDuration, WardenError } from '@warden/api';
import { loginWithPing, normalizeProxy, ProfileStore, signup, wardenHome } from '@warden/client';
import { type CommandContext, str } from '../command';
import { createPrompter } from '../prompt';
import { qrCode } from '../qr';

/**
 * The proxy: --proxy, else WARDEN_PROXY, else the last one used (kept after `wsh logout`);
 * `https://HOST:PORT` (as `warden start` prints it) is accepted.
 */
function requireProxy(ctx: CommandContext, store: ProfileStore): string {
  const proxy = str(ctx.values, 'proxy') ?? (ctx.env.WARDEN_PROXY || undefined) ?? store.lastUsed()?.proxy;
  if (!proxy)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--proxy=HOST:PORT is required (or set WARDEN_PROXY)');
  return normalizeProxy(proxy);
}

function trustFlags(ctx: CommandContext, store: ProfileStore) {
  return {
    proxy: requireProxy(ctx, store),
    caPin: str(ctx.values, 'ca-pin'),
    insecure: Boolean(ctx.values.insecure),
  };
}

export async function runSignup(ctx: CommandContext): Promise<number> {
  const token = str(ctx.values, 'token');
  if (!token)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--token is required (from `wctl users add`)');
  const store = new ProfileStore(wardenHome(ctx.env));
  const flags = trustFlags(ctx, store);
  const prompter = createPrompter(ctx.stdin, ctx.stderr);
  const isTty = Boolean((ctx.stdout as { isTTY?: boolean }).isTTY);
  try {
    const res = await signup(
      store,
      { ...flags, token },
      {
        // The rule is stated up front and checked before the second factor is shown.
        password: async (policy, problem) => {
          if (problem && !ctx.stdin.isTTY) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', problem);
          if (problem) ctx.stderr.write(`${problem}; try again.\n`);
          const pw = await prompter.ask(`Enter a new password (${policy}): `, { secret: true });
          if (ctx.stdin.isTTY) {
            const again = await prompter.ask('Confirm the password: ', { secret: true });
            if (again !== pw) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'the passwords do not match');
          }
          return pw;
        },
        showTotp: async (uri) => {
          ctx.stdout.write('Scan this with your authenticator app, or enter the URI in it:\n');
          if (isTty) ctx.stdout.write(await qrCode(uri));
          ctx.stdout.write(`${uri}\n`);
        },
        otp: () => prompter.ask('Enter the code from your authenticator app: '),
      },
    );
    if (!res.profile) {
      ctx.stdout.write(
        `Signed up as "${res.user}". Log in with:\n  wsh login --proxy=${flags.proxy} --user=${res.user}\n`,
      );
      return 0;
    }
    ctx.stdout.write(`Signed up as "${res.user}" and logged in.\n`);
    const { deviceLogin } = await import('./device');
    const final = await deviceLogin(ctx, store, res.profile, res.ping);
    const { printStatus } = await import('./status');
    printStatus(ctx, final);
    return 0;
  } finally {
    prompter.close();
  }
}

/**
 * Whether `wsh login` starts the device web-helper for a login whose Web UI sessions have
 * device trust mode `mode` (the strictest of the cluster's and the user's roles'). Only people
 * log in with `wsh login` (bots are refused there), and `required-for-humans` demands a device
 * of people exactly as `required` does, so both start it; `off`, `optional`, none or a mode
 * this wsh does not know do not.
 */
export function webHelperNeeded(mode: string | undefined): boolean {
  return mode === 'required' || mode === 'required-for-humans';
}

/**
 * `wsh login`: the user's password and OTP, then — when this machine holds a device credential
 * enrolled in the cluster and device trust is not off for the user — device authentication,
 * which renews the certificates with the device extensions. A failed device authentication
 * leaves the user logged in without them, and says so.
 */
export async function runLogin(ctx: CommandContext): Promise<number> {
  const store = new ProfileStore(wardenHome(ctx.env));
  const flags = trustFlags(ctx, store);
  // --user, else WARDEN_USER, else the last user on this proxy, else the OS user.
  const last = store.lastUsed();
  const user =
    str(ctx.values, 'user') ??
    (ctx.env.WARDEN_USER || undefined) ??
    (last?.proxy === flags.proxy ? last.user : undefined) ??
    userInfo().username;
  const ttl = str(ctx.values, 'ttl');
  const helperMode = str(ctx.values, 'web-helper') ?? (ctx.env.WARDEN_WEB_HELPER || 'auto');
  if (helperMode !== 'auto' && helperMode !== 'off')
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--web-helper (or WARDEN_WEB_HELPER) must be auto or off',
    );
  const prompter = createPrompter(ctx.stdin, ctx.stderr);
  // The device step's code loads while the password is asked for and checked (the event loop
  // is idle then), not after: on an enrolled machine that is the TPM code too.
  const device = import('./device');
  device.then(
    (m) => m.preloadDeviceLogin(ctx),
    () => undefined,
  );
  try {
    const { profile, ping } = await loginWithPing(
      store,
      { ...flags, user, ttlMs: ttl ? parseDuration(ttl, '--ttl') : undefined },
      {
        password: () => prompter.ask(`Enter password for Warden user ${user}: `, { secret: true }),
        otp: () => prompter.ask('Enter an OTP code from your authenticator app: '),
      },
    );
    // Device authentication, when this machine holds a credential enrolled in the cluster.
    const started = { ms: performance.now(), cpu: process.cpuUsage() };
    const { deviceLogin } = await device;
    const final = await deviceLogin(ctx, store, profile, ping, started);
    const { printStatus } = await import('./status');
    printStatus(ctx, final);
    // Web UI sessions of this user need a trusted device: make sure the helper runs.
    if (webHelperNeeded(final.webDeviceTrustMode) && helperMode === 'auto')
      await (await import('./web-helper')).ensureWebHelper(ctx, final);
    // kubectl contexts of `wsh kube login --cert-files` get certificates of this login (the
    // kube module loads only when such files exist: most logins have none).
    if (existsSync(join(final.dir, 'kube', 'files')))
      await (await import('./kube')).renewKubeCertFiles(ctx, final);
    return 0;
  } finally {
    prompter.close();
  }
}
