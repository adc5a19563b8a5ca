/**
 * `wsh device asset-tag|collect|keyget|enroll`: the device side of device trust (DESIGN §6).
 * The TPM comes from WARDEN_TPM (default /dev/tpmrm0); the AK's TPM-wrapped blobs live in
 * ~/.cache/warden-device (WARDEN_DEVICE_CACHE overrides).
 */
import { DEVICE_OS_NAMES, type DeviceOsType, isWardenError, type rpc, WardenError } from '@warden/api';
import {
  ApiClient,
  authenticateDevice,
  clientForProfile,
  credentialView,
  DeviceCache,
  type DeviceLoginOutcome,
  deviceCacheDir,
  EnrollCeremony,
  establishTrust,
  type LoadedProfile,
  openNativeDevice,
  ProfileStore,
  preloadDeviceAuthentication,
  wardenHome,
} from '@warden/client';
import { type CommandContext, str } from '../command';
import { formatData, parseFormat } from '../format';

async function withDevice<T>(
  ctx: CommandContext,
  f: (dev: Awaited<ReturnType<typeof openNativeDevice>>) => Promise<T>,
) {
  const dev = await openNativeDevice(ctx.env);
  try {
    return await f(dev);
  } finally {
    await dev.close();
  }
}

export async function runAssetTag(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const tag = await withDevice(ctx, (dev) => dev.assetTag());
  ctx.stdout.write(format === 'text' ? `${tag}\n` : formatData({ asset_tag: tag }, format));
  return 0;
}

/** `json` (the default) or `yaml`: these print structured data only. */
function dataFormat(ctx: CommandContext): 'json' | 'yaml' {
  const format = parseFormat(ctx.values.format ?? 'json');
  return format === 'text' ? 'json' : format;
}

export async function runCollect(ctx: CommandContext): Promise<number> {
  const format = dataFormat(ctx);
  const data = await withDevice(ctx, (dev) => dev.collectDeviceData());
  ctx.stdout.write(formatData(data, format));
  return 0;
}

export async function runKeyget(ctx: CommandContext): Promise<number> {
  const format = dataFormat(ctx);
  const cred = await withDevice(ctx, (dev) => dev.credential({ create: true }));
  ctx.stdout.write(formatData(credentialView(cred!), format));
  return 0;
}

/** A spinner on a terminal (stderr) while the ceremony runs; silent otherwise. */
function spinner(ctx: CommandContext, text: string) {
  const out = ctx.stderr as NodeJS.WritableStream & { isTTY?: boolean };
  if (!out.isTTY) return { phase: (_p: string) => {}, stop: () => {} };
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  let detail = 'talking to the TPM';
  const draw = () => out.write(`\r\x1b[2K${frames[i++ % frames.length]} ${text} (${detail})…`);
  draw();
  const timer = setInterval(draw, 80);
  return {
    phase: (p: string) => {
      detail = p === 'device' ? 'talking to the TPM' : 'waiting for Warden';
    },
    stop: () => {
      clearInterval(timer);
      out.write('\r\x1b[2K');
    },
  };
}

function deviceName(device: { asset_tag: string; os_type: string }): string {
  const os = DEVICE_OS_NAMES[device.os_type as DeviceOsType] ?? device.os_type;
  return `Device "${device.asset_tag}"/${os}`;
}

/** The logged-in profile for this proxy when its certificates are still valid. */
function validProfile(store: ProfileStore, proxy: string | undefined): LoadedProfile | undefined {
  const p = store.load(proxy);
  return p && Date.parse(p.expires) > Date.now() ? p : undefined;
}

export async function runEnroll(ctx: CommandContext): Promise<number> {
  const token = str(ctx.values, 'token');
  const current = Boolean(ctx.values['current-device']);
  if (!token && !current) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'either --token (from `wctl devices add --enroll` or `wctl devices enroll`) or --current-device must be set',
    );
  }
  if (token && current)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use --token or --current-device, not both');
  const store = new ProfileStore(wardenHome(ctx.env));
  const proxy = str(ctx.values, 'proxy') ?? ctx.env.WARDEN_PROXY ?? store.load()?.proxy;
  if (!proxy) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--proxy=HOST:PORT is required (or set WARDEN_PROXY, or log in first)',
    );
  }
  const trust = await establishTrust({
    proxy,
    caPin: str(ctx.values, 'ca-pin'),
    insecure: Boolean(ctx.values.insecure),
    knownCaPems: store.trustedCas(proxy),
  });
  const profile = validProfile(store, proxy);
  const api = new ApiClient({
    proxy,
    caPems: trust.hostCaPems,
    insecure: trust.insecure,
    // A logged-in user's certificate names the device's owner.
    ...(profile ? { identity: { certPem: profile.tlsCert, keyPem: profile.keyPem } } : {}),
  });

  let enrollToken = token;
  if (current) {
    if (!profile) {
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        `--current-device registers this device as you: log in first (wsh login --proxy=${proxy})`,
      );
    }
    enrollToken = await registerCurrentDevice(ctx, api);
  }

  const spin = spinner(ctx, 'Enrolling the device');
  let device: rpc.DeviceSummary;
  try {
    const ceremony = new EnrollCeremony({ env: ctx.env, onPhase: spin.phase });
    ({ device } = await ceremony.run(api, {
      token: enrollToken!,
      cluster: trust.ping.cluster_name,
      proxy,
    }));
  } finally {
    spin.stop();
  }
  ctx.stdout.write(`${deviceName(device)} enrolled\n`);

  // Log in again for the user: the current certificates get the device extensions.
  if (!profile || trust.ping.auth.device_trust_mode === 'off') {
    ctx.stdout.write(
      `Log in again to use it as a trusted device:\n  wsh login --proxy=${proxy}${profile ? ` --user=${profile.user}` : ''}\n`,
    );
    return 0;
  }
  const spin2 = spinner(ctx, 'Authenticating the device');
  let outcome: DeviceLoginOutcome;
  try {
    outcome = await authenticateDevice(store, profile, { env: ctx.env, onPhase: spin2.phase });
  } finally {
    spin2.stop();
  }
  if (outcome.outcome === 'authenticated') {
    ctx.stdout.write(`Your certificates for ${proxy} now carry the trusted device (wsh status).\n`);
  } else {
    const why = outcome.outcome === 'failed' ? outcome.error.message : outcome.reason;
    ctx.stdout.write(
      `Log in again to use it as a trusted device (${why}):\n  wsh logout && wsh login --proxy=${proxy} --user=${profile.user}\n`,
    );
  }
  return 0;
}

/** `--current-device`: registers this device (or finds it) and makes an enrollment token. */
async function registerCurrentDevice(ctx: CommandContext, api: ApiClient): Promise<string> {
  const { osType, assetTag } = await withDevice(ctx, async (dev) => ({
    osType: dev.osType,
    assetTag: await dev.assetTag(),
  }));
  try {
    const added = await api.addDevice({ os_type: osType, asset_tag: assetTag, enroll: true });
    ctx.stdout.write(`Device "${assetTag}"/${DEVICE_OS_NAMES[osType]} added to the inventory\n`);
    if (!added.enroll_token)
      throw new WardenError('WARDEN_ERR_INTERNAL', 'the server made no enrollment token');
    return added.enroll_token.token;
  } catch (e) {
    if (!isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS')) throw e;
  }
  const made = await api.createDeviceEnrollToken({ device: assetTag });
  return made.token;
}

/** For `wsh login`: loads what device authentication needs while the password is checked. */
export function preloadDeviceLogin(ctx: CommandContext): void {
  preloadDeviceAuthentication(ctx.env);
}

/**
 * Exposed for `wsh login`: device authentication after the user logged in — first, when the
 * cluster has `auto_enroll` and this machine is not enrolled in it, enrollment without a token
 * (the server enrolls it only if an administrator registered its asset tag).
 */
export async function deviceLogin(
  ctx: CommandContext,
  store: ProfileStore,
  profile: LoadedProfile,
  ping?: rpc.PingResponse,
  /** When the device step began (before this module loaded), for --debug: wall and CPU time. */
  started: { ms: number; cpu: NodeJS.CpuUsage } = { ms: performance.now(), cpu: process.cpuUsage() },
): Promise<LoadedProfile> {
  await autoEnroll(ctx, profile, ping);
  const spin = spinner(ctx, 'Authenticating the device');
  let outcome: DeviceLoginOutcome;
  try {
    outcome = await authenticateDevice(store, profile, { env: ctx.env, onPhase: spin.phase });
  } finally {
    spin.stop();
  }
  if (outcome.outcome === 'authenticated') {
    if (ctx.env.WARDEN_DEBUG) {
      // What `npm run bench:devicetrust` reads: the whole step (from before this module
      // loaded), the time it waited for the TPM alone, and the rest — Warden's own.
      const { deviceMs, deviceOnlyMs, serverMs } = outcome.timings;
      const ms = performance.now() - started.ms;
      const cpu = process.cpuUsage(started.cpu);
      ctx.stderr.write(
        `debug: device authentication ${ms.toFixed(1)} ms: TPM alone ${deviceOnlyMs.toFixed(1)} ms, ` +
          `Warden ${(ms - deviceOnlyMs).toFixed(1)} ms (RPCs ${serverMs.toFixed(1)} ms, ` +
          `TPM in all ${deviceMs.toFixed(1)} ms); wsh CPU ${((cpu.user + cpu.system) / 1000).toFixed(1)} ms\n`,
      );
    }
    return outcome.profile;
  }
  if (outcome.outcome === 'failed') {
    ctx.stderr.write(
      `WARNING: device authentication failed: ${outcome.error.message}\n` +
        'You are logged in without the trusted device (no device extensions): resources that require a ' +
        'trusted device will refuse you.\n',
    );
  }
  return profile;
}

/**
 * Auto-enrollment at login: only when the cluster offers it, device trust is on, and this
 * machine holds no enrollment for the cluster. A refusal (device not registered, no TPM) is a
 * note, never a failed login.
 */
async function autoEnroll(
  ctx: CommandContext,
  profile: LoadedProfile,
  seen?: rpc.PingResponse,
): Promise<void> {
  if (new DeviceCache(deviceCacheDir(ctx.env)).enrollmentIn(profile.cluster)) return;
  const api = clientForProfile(profile);
  // The login's own ping (establishing trust) already said whether the cluster auto-enrolls.
  const ping = seen ?? (await api.ping().catch(() => undefined));
  if (!ping?.auth.auto_enroll || ping.auth.device_trust_mode === 'off') return;
  const spin = spinner(ctx, 'Enrolling this device (auto-enrollment)');
  try {
    const { device } = await new EnrollCeremony({ env: ctx.env, onPhase: spin.phase }).run(api, {
      token: undefined,
      cluster: profile.cluster,
      proxy: profile.proxy,
    });
    spin.stop();
    ctx.stderr.write(`${deviceName(device)} enrolled automatically\n`);
  } catch (e) {
    spin.stop();
    ctx.stderr.write(`NOTE: this device was not enrolled automatically: ${(e as Error).message}\n`);
  }
}
