/**
 * Issue 17 item 3: `device_trust.auto_enroll`. Real warden, swtpm TPMs, the wsh and wctl CLIs.
 * A device an administrator registered by asset tag is enrolled at the user's first
 * `wsh login` on it, without a token, and the login then carries the device; a device that is
 * not in the inventory is never auto-enrolled (the login still works, without a device); a
 * TPM that claims a registered `ek:` asset tag it does not hold is refused; with
 * `auto_enroll` off, no token means no enrollment.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { clientForProfile, EnrollCeremony, openNativeDevice, ProfileStore } from '@warden/client';
import {
  inviteAndSignUp,
  requireSwtpm,
  runCli,
  type SwtpmProcess,
  setDeviceTrust,
  startMachine,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const setup = requireSwtpm();
const autoEnroll = (w: WardenProcess, on: boolean) =>
  setDeviceTrust(w, 'optional', { deviceTrustYaml: `    auto_enroll: ${on}\n` });

describe('auto-enrollment at wsh login', { skip: setup.skip }, () => {
  let w: WardenProcess;
  const tpms: SwtpmProcess[] = [];
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });

  before(async () => {
    w = await startWarden();
    await autoEnroll(w, true);
  });
  after(async () => {
    for (const t of tpms) await t.stop();
    await w?.stop();
  });

  /** A machine: its own swtpm (EK-derived `ek:` asset tag), wsh home and device cache. */
  async function machine(name: string) {
    const m = await startMachine(w, name, { ekCert: false });
    tpms.push(m.tpm);
    const env = { ...m.env, WARDEN_HOME: join(w.dir, `home-${name}`) };
    const dev = await openNativeDevice(env);
    const tag = await dev.assetTag().finally(() => dev.close());
    return { env, tag };
  }

  async function user(name: string, env: NodeJS.ProcessEnv): Promise<void> {
    await inviteAndSignUp(w, name, { roles: 'access', logins: 'root', password: PASSWORD, env });
  }

  async function devices(): Promise<
    { spec: { asset_tag: string; enroll_status: string; owner?: string } }[]
  > {
    return JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout);
  }

  test('a registered device is enrolled at login, without a token, and the login carries it', async () => {
    const m = await machine('alice');
    // Signed up (signup logs in: nothing to enroll yet), then the admin registers the device.
    await user('alice', m.env);
    const added = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${m.tag}`]);
    assert.equal(added.code, 0, added.stderr);
    const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
      env: m.env,
      input: `${PASSWORD}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /enrolled automatically/);
    const dev = (await devices()).find((d) => d.spec.asset_tag === m.tag);
    assert.equal(dev?.spec.enroll_status, 'enrolled');
    const status = await runCli('wsh', ['status', '--format=json'], { env: m.env });
    const extensions = (JSON.parse(status.stdout) as { extensions: string[] }).extensions;
    assert.ok(
      ['warden-device-id', 'warden-device-asset-tag', 'warden-device-credential-id'].every((x) =>
        extensions.includes(x),
      ),
      'the login after auto-enrollment carries the device extensions',
    );
    const events = JSON.parse(
      (await wctl(['audit', 'search', '--type=device.enroll', '--format=json'])).stdout,
    ) as { success: boolean; auto?: boolean; asset_tag?: string; user?: string }[];
    const auto = events.find((e) => e.asset_tag === m.tag && e.success);
    assert.equal(auto?.auto, true);
    assert.equal(auto?.user, 'alice');
  });

  test('a device not in the inventory is never auto-enrolled; the login stands without it', async () => {
    const m = await machine('bob');
    await user('bob', m.env);
    const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=bob'], {
      env: m.env,
      input: `${PASSWORD}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /not in the inventory/);
    assert.equal(
      (await devices()).find((d) => d.spec.asset_tag === m.tag),
      undefined,
    );
  });

  test('a TPM claiming a registered ek: asset tag it does not hold is refused', async () => {
    const victim = await machine('victim');
    const added = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${victim.tag}`]);
    assert.equal(added.code, 0, added.stderr);
    const thief = await machine('mallory');
    await user('mallory', thief.env);
    const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=mallory'], {
      env: { ...thief.env, WARDEN_DEVICE_CACHE: join(w.dir, 'cache-mallory-login') },
      input: `${PASSWORD}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    const profile = new ProfileStore(thief.env.WARDEN_HOME).require();
    // The thief's TPM, reporting the victim's asset tag.
    const ceremony = new EnrollCeremony({ env: thief.env });
    const open = ceremony.openDevice;
    ceremony.openDevice = async () => {
      const dev = await open();
      const collect = dev.collectDeviceData.bind(dev);
      dev.collectDeviceData = async () => ({ ...(await collect()), serial_number: victim.tag });
      return dev;
    };
    await assert.rejects(
      ceremony.run(clientForProfile(profile), {
        token: undefined,
        cluster: profile.cluster,
        proxy: profile.proxy,
      }),
      (e) => isWardenError(e) && /asset tag|EK/i.test(e.message),
    );
    const dev = (await devices()).find((d) => d.spec.asset_tag === victim.tag);
    assert.equal(dev?.spec.enroll_status, 'not_enrolled');
  });

  test('with auto_enroll off, a logged-in user cannot enroll without a token', async () => {
    await autoEnroll(w, false);
    try {
      const m = await machine('carol');
      await wctl(['devices', 'add', '--os=linux', `--asset-tag=${m.tag}`]);
      await user('carol', m.env);
      const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=carol'], {
        env: m.env,
        input: `${PASSWORD}\n`,
      });
      assert.equal(login.code, 0, login.stderr);
      assert.doesNotMatch(login.stderr, /enrolled automatically/);
      const profile = new ProfileStore(m.env.WARDEN_HOME).require();
      await assert.rejects(
        new EnrollCeremony({ env: m.env }).run(clientForProfile(profile), {
          token: undefined,
          cluster: profile.cluster,
          proxy: profile.proxy,
        }),
        (e) => isWardenError(e, 'WARDEN_ERR_INVALID_TOKEN') && /auto-enrollment is off/.test(e.message),
      );
      assert.equal(
        (await devices()).find((d) => d.spec.asset_tag === m.tag)?.spec.enroll_status,
        'not_enrolled',
      );
    } finally {
      await autoEnroll(w, true);
    }
  });
});
