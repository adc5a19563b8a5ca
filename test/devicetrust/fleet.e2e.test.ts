/**
 * Issue 17 items 3–4: `wctl devices import FILE.csv` (good, duplicate and bad rows; a second
 * run changes nothing) and `device_trust.bind_owner` (another user on an enrolled machine gets
 * no device extensions and is told whose device it is; an imported owner also decides who may
 * auto-enroll). Real warden, swtpm, wsh and wctl.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireSwtpm, runCli, setDeviceTrust, type WardenProcess } from '@warden/testkit';
import { DeviceFleet, type TpmMachine } from '../support/device-fleet';

const setup = requireSwtpm();

describe('fleet: CSV import and bind_owner', { skip: setup.skip }, () => {
  let w: WardenProcess;
  /** One machine that two users share. */
  let machine: TpmMachine;
  const fleet = new DeviceFleet();
  const wctl = (args: string[]) => fleet.wctl(args);

  before(async () => {
    // Password-only logins keep the test short.
    w = await fleet.start({ deviceTrust: 'optional' });
    machine = await fleet.machine('shared', { ekCert: false });
  });
  after(() => fleet.stop());

  test('import: good, duplicate and bad rows, each reported; a second run changes nothing', async () => {
    const csv = join(w.dir, 'mdm.csv');
    writeFileSync(
      csv,
      'Serial Number,Platform,Assigned User\n' +
        'C02XK0AAJG5H,Darwin,alice\n' +
        '"PF3,ABC",linux,bob\n' +
        'C02XK0AAJG5H,macOS,alice\n' +
        ',linux,carol\n' +
        'XYZ123,BeOS,dave\n',
    );
    const first = await wctl(['devices', 'import', csv, '--format=json']);
    assert.equal(first.code, 1, 'a failed row makes the exit code 1');
    const rows = JSON.parse(first.stdout) as {
      line: number;
      asset_tag: string;
      outcome: string;
      detail?: string;
    }[];
    assert.deepEqual(
      rows.map((r) => [r.line, r.asset_tag, r.outcome]),
      [
        [2, 'C02XK0AAJG5H', 'added'],
        [3, 'PF3,ABC', 'added'],
        [4, 'C02XK0AAJG5H', 'already registered'],
        [5, '', 'error'],
        [6, 'XYZ123', 'error'],
      ],
    );
    assert.match(rows[4]!.detail!, /beos/i);
    const devices = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: { asset_tag: string; os_type: string; owner?: string };
    }[];
    const mac = devices.find((d) => d.spec.asset_tag === 'C02XK0AAJG5H');
    assert.deepEqual([mac?.spec.os_type, mac?.spec.owner], ['macos', 'alice']);
    assert.equal(devices.length, 2, 'bad rows left nothing behind');

    const again = await wctl(['devices', 'import', csv]);
    assert.match(again.stdout, /0 added, 3 already registered, 2 failed/);
    assert.equal(JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout).length, 2);

    const missing = await wctl(['devices', 'import', join(w.dir, 'nope.csv')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read/);
  });

  test('bind_owner: another user on the owner’s machine gets no device, and is told whose it is', async () => {
    for (const name of ['erin', 'frank']) {
      await fleet.signUp(name, fleet.env(machine, name), { roles: 'access', logins: 'root' });
    }
    // erin enrolls the machine (she becomes its owner).
    await fleet.enroll(fleet.env(machine, 'erin'));

    const login = (name: 'erin' | 'frank') => fleet.login(fleet.env(machine, name), name);
    const status = async (name: 'erin' | 'frank') =>
      (
        JSON.parse(
          (
            await runCli('wsh', ['status', '--format=json'], {
              env: { ...w.env, WARDEN_HOME: fleet.home(machine, name) },
            })
          ).stdout,
        ) as { extensions: string[] }
      ).extensions.includes('warden-device-id');

    // Without bind_owner, the machine's device serves whoever logs in on it.
    const f0 = await login('frank');
    assert.equal(f0.code, 0, f0.stderr);
    assert.equal(await status('frank'), true);

    await setDeviceTrust(w, 'optional', { deviceTrustYaml: '    bind_owner: true\n' });
    const frank = await login('frank');
    assert.equal(frank.code, 0, frank.stderr);
    assert.match(frank.stderr, /belongs to "erin"/);
    assert.equal(await status('frank'), false);
    const erin = await login('erin');
    assert.equal(erin.code, 0, erin.stderr);
    assert.equal(await status('erin'), true);
  });
});
