/**
 * Device trust as an end-to-end test sets it up against a real `warden start`, with the real
 * CLIs: the cluster's device-trust mode (`wctl create -f` of a cluster_auth_preference), a
 * machine with its own swtpm, a user invited and signed up, and a machine enrolled by the
 * admin's token. Each step throws with the CLI's stderr when it fails.
 *
 * @example
 *   const skip = requireSwtpm().skip;
 *   await setDeviceTrust(w, 'required');
 *   const m = await startMachine(w, 'a');
 *   await inviteAndSignUp(w, 'alice', { roles: 'access', password, env: { ...m.env, WARDEN_HOME } });
 *   const { deviceId } = await enrollMachine(w, { ...m.env, WARDEN_HOME });
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CliResult, runCli, succeeded } from './cli';
import { type SwtpmProcess, type SwtpmStartOptions, startSwtpm } from './swtpm';
import { requireTool, type ToolCheck } from './tools';
import type { WardenProcess } from './warden';

/** swtpm and swtpm_setup (and, for `chain`, tpm2-tools to write an EK certificate chain). */
export function requireSwtpm(o: { chain?: boolean } = {}): ToolCheck {
  const swtpm = requireTool('swtpm');
  const setup = swtpm.ok ? requireTool('swtpm_setup') : swtpm;
  return setup.ok && o.chain ? requireTool('tpm2_nvdefine') : setup;
}

let capFiles = 0;

/**
 * Stores the cluster_auth_preference with device_trust `mode` (and `deviceTrustYaml`: more
 * lines of that section, indented four spaces) and `second_factor` ("off" unless given).
 */
export async function setDeviceTrust(
  w: Pick<WardenProcess, 'dir' | 'env'>,
  mode: string,
  o: { secondFactor?: string; deviceTrustYaml?: string } = {},
): Promise<void> {
  const file = join(w.dir, `cap-${mode}-${++capFiles}.yaml`);
  writeFileSync(
    file,
    'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\n' +
      `spec:\n  type: local\n  second_factor: "${o.secondFactor ?? 'off'}"\n` +
      `  device_trust:\n    mode: "${mode}"\n${o.deviceTrustYaml ?? ''}`,
  );
  succeeded(
    'wctl create cluster_auth_preference',
    await runCli('wctl', ['create', '-f', file], { env: w.env }),
  );
}

/** A machine: its own swtpm, device cache and DMI folder (under the cluster's dir). */
export interface TpmMachine {
  name: string;
  tpm: SwtpmProcess;
  /** The cluster's env plus WARDEN_TPM, WARDEN_DEVICE_CACHE and WARDEN_DEVICE_DMI_DIR (no WARDEN_HOME). */
  env: NodeJS.ProcessEnv;
}

export async function startMachine(
  w: Pick<WardenProcess, 'dir' | 'env'>,
  name: string,
  swtpm: SwtpmStartOptions = { ekCert: true },
): Promise<TpmMachine> {
  const tpm = await startSwtpm(swtpm);
  const dmi = join(w.dir, `dmi-${name}`);
  mkdirSync(dmi);
  return {
    name,
    tpm,
    env: {
      ...w.env,
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(w.dir, `device-cache-${name}`),
      WARDEN_DEVICE_DMI_DIR: dmi,
    },
  };
}

/** The id of the device registered with this asset tag (`wctl devices ls`). */
export async function deviceIdOf(w: Pick<WardenProcess, 'env'>, assetTag: string): Promise<string> {
  const ls = succeeded(
    'wctl devices ls',
    await runCli('wctl', ['devices', 'ls', '--format=json'], { env: w.env }),
  );
  const found = (JSON.parse(ls.stdout) as { metadata: { name: string }; spec: { asset_tag: string } }[]).find(
    (d) => d.spec.asset_tag === assetTag,
  );
  if (!found) throw new Error(`no device with asset tag ${assetTag}:\n${ls.stdout}`);
  return found.metadata.name;
}

/**
 * Enrolls the machine of `env` (its TPM, and a user logged in or not) as an administrator
 * would have it done: `wsh device asset-tag`, `wctl devices add --os=linux --asset-tag=… --enroll`,
 * `wsh device enroll --token=…`. Returns the asset tag, the device's id and what enroll printed.
 */
export async function enrollMachine(
  w: Pick<WardenProcess, 'env'>,
  env: NodeJS.ProcessEnv,
): Promise<{ tag: string; deviceId: string; enroll: CliResult }> {
  const tag = succeeded(
    'wsh device asset-tag',
    await runCli('wsh', ['device', 'asset-tag'], { env }),
  ).stdout.trim();
  const add = succeeded(
    'wctl devices add --enroll',
    await runCli('wctl', ['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll'], { env: w.env }),
  );
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (!token) throw new Error(`wctl devices add printed no enrollment token:\n${add.stdout}`);
  const enroll = succeeded(
    'wsh device enroll',
    await runCli('wsh', ['device', 'enroll', `--token=${token}`], { env }),
  );
  return { tag, deviceId: await deviceIdOf(w, tag), enroll };
}
