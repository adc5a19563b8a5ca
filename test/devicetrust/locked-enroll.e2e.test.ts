/**
 * Issue 15 item 7: locks apply to every route, including the `auth: optional` ones. A locked
 * user who is logged in (wsh presents their certificate) must not enroll a device with a
 * token: before the fix, the router dropped identify's LOCKED error on those routes and the
 * enrollment went through anonymously. Real warden, swtpm as the TPM, the wsh CLI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openNativeDevice } from '@warden/client';
import { requireSwtpm, runCli } from '@warden/testkit';
import { DeviceFleet, type TpmMachine } from '../support/device-fleet';

const setup = requireSwtpm();

describe('a locked user cannot enroll a device with a token', { skip: setup.skip }, () => {
  const fleet = new DeviceFleet();
  let machine: TpmMachine;

  before(async () => {
    // Password-only logins keep the test short; device trust stays optional (the default).
    await fleet.start({ deviceTrust: 'optional' });
    machine = await fleet.machine('locked', { ekCert: false });
  });
  after(() => fleet.stop());

  test('enroll --token while logged in as a locked user is refused with the lock message', async () => {
    const wctl = (args: string[]) => fleet.wctl(args);
    const env = fleet.env(machine, 'mallory');
    const dev = await openNativeDevice(env);
    const tag = await dev.assetTag().finally(() => dev.close());

    await fleet.signUp('mallory', env, { roles: 'access', logins: 'root' });
    const l = await fleet.login(env, 'mallory');
    assert.equal(l.code, 0, l.stderr);

    const made = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']);
    assert.equal(made.code, 0, made.stderr);
    const token = /--token=(\S+)/.exec(made.stdout)![1]!;
    const lock = await wctl(['lock', '--user=mallory', '--message=offboarding', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);

    const enroll = await runCli('wsh', ['device', 'enroll', `--token=${token}`], { env });
    assert.equal(enroll.code, 1, enroll.stdout);
    assert.match(enroll.stderr, /lock targeting User:"mallory" is in force: offboarding/);
    const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: { asset_tag: string; enroll_status: string };
    }[];
    assert.equal(list.find((d) => d.spec.asset_tag === tag)?.spec.enroll_status, 'not_enrolled');
  });
});
