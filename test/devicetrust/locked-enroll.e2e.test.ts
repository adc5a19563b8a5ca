/**
 * Issue 15 item 7: locks apply to every route, including the `auth: optional` ones. A locked
 * user who is logged in (wsh presents their certificate) must not enroll a device with a
 * token: before the fix, the router dropped identify's LOCKED error on those routes and the
 * enrollment went through anonymously. Real warden, swtpm as the TPM, the wsh CLI.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openNativeDevice } from '@warden/client';
import {
  requireTool,
  runCli,
  type SwtpmProcess,
  signupWithTotp,
  startSwtpm,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const swtpm = requireTool('swtpm');
const setup = swtpm.ok ? requireTool('swtpm_setup') : swtpm;

describe('a locked user cannot enroll a device with a token', { skip: setup.skip }, () => {
  let w: WardenProcess;
  let tpm: SwtpmProcess;

  before(async () => {
    w = await startWarden();
    tpm = await startSwtpm({ ekCert: false });
    // Password-only logins keep the test short; device trust stays optional (the default).
    const cap = join(w.dir, 'cap.yaml');
    writeFileSync(
      cap,
      'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\nspec:\n  second_factor: "off"\n  device_trust:\n    mode: optional\n',
    );
    const res = await runCli('wctl', ['create', '-f', cap], { env: w.env });
    assert.equal(res.code, 0, res.stderr);
  });
  after(async () => {
    await tpm?.stop();
    await w?.stop();
  });

  test('enroll --token while logged in as a locked user is refused with the lock message', async () => {
    const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
    const dmi = join(w.dir, 'dmi-locked');
    mkdirSync(dmi);
    const env = {
      ...w.env,
      WARDEN_HOME: join(w.dir, 'home-locked'),
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(w.dir, 'cache-locked'),
      WARDEN_DEVICE_DMI_DIR: dmi,
    };
    const dev = await openNativeDevice(env);
    const tag = await dev.assetTag().finally(() => dev.close());

    const add = await wctl(['users', 'add', 'mallory', '--roles=access', '--logins=root']);
    assert.equal(add.code, 0, add.stderr);
    const invite = /--token=(\S+)/.exec(add.stdout)![1]!;
    const s = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${invite}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      env,
    );
    assert.equal(s.code, 0, s.stderr);
    const l = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=mallory'], {
      env,
      input: `${PASSWORD}\n`,
    });
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
