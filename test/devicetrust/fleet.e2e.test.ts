/**
 * Issue 17 items 3–4: `wctl devices import FILE.csv` (good, duplicate and bad rows; a second
 * run changes nothing) and `device_trust.bind_owner` (another user on an enrolled machine gets
 * no device extensions and is told whose device it is; an imported owner also decides who may
 * auto-enroll). Real warden, swtpm, wsh and wctl.
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

function cap(w: WardenProcess, extra: string): string {
  const file = join(w.dir, 'cap-fleet.yaml');
  writeFileSync(
    file,
    'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\n' +
      `spec:\n  second_factor: "off"\n  device_trust:\n    mode: optional\n${extra}`,
  );
  return file;
}

describe('fleet: CSV import and bind_owner', { skip: setup.skip }, () => {
  let w: WardenProcess;
  let tpm: SwtpmProcess;
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });

  before(async () => {
    w = await startWarden();
    tpm = await startSwtpm({ ekCert: false });
    // Password-only logins keep the test short.
    const set = await wctl(['create', '-f', cap(w, '')]);
    assert.equal(set.code, 0, set.stderr);
  });
  after(async () => {
    await tpm?.stop();
    await w?.stop();
  });

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
    const dmi = join(w.dir, 'dmi-shared');
    mkdirSync(dmi);
    const machine = {
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(w.dir, 'cache-shared'),
      WARDEN_DEVICE_DMI_DIR: dmi,
    };
    const dev = await openNativeDevice({ ...w.env, ...machine });
    const tag = await dev.assetTag().finally(() => dev.close());
    const homes = { erin: join(w.dir, 'home-erin'), frank: join(w.dir, 'home-frank') };
    for (const name of ['erin', 'frank'] as const) {
      const add = await wctl(['users', 'add', name, '--roles=access', '--logins=root']);
      assert.equal(add.code, 0, add.stderr);
      const s = await signupWithTotp(
        [`--proxy=${w.proxy}`, `--token=${/--token=(\S+)/.exec(add.stdout)![1]!}`, `--ca-pin=${w.caPin}`],
        PASSWORD,
        { ...w.env, ...machine, WARDEN_HOME: homes[name] },
      );
      assert.equal(s.code, 0, s.stderr);
    }
    // erin enrolls the machine (she becomes its owner).
    const made = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']);
    assert.equal(made.code, 0, made.stderr);
    const enroll = await runCli(
      'wsh',
      ['device', 'enroll', `--token=${/--token=(\S+)/.exec(made.stdout)![1]!}`],
      {
        env: { ...w.env, ...machine, WARDEN_HOME: homes.erin },
      },
    );
    assert.equal(enroll.code, 0, enroll.stderr);

    const login = (name: 'erin' | 'frank') =>
      runCli('wsh', ['login', `--proxy=${w.proxy}`, `--user=${name}`], {
        env: { ...w.env, ...machine, WARDEN_HOME: homes[name] },
        input: `${PASSWORD}\n`,
      });
    const status = async (name: 'erin' | 'frank') =>
      (
        JSON.parse(
          (await runCli('wsh', ['status', '--format=json'], { env: { ...w.env, WARDEN_HOME: homes[name] } }))
            .stdout,
        ) as { extensions: string[] }
      ).extensions.includes('warden-device-id');

    // Without bind_owner, the machine's device serves whoever logs in on it.
    const f0 = await login('frank');
    assert.equal(f0.code, 0, f0.stderr);
    assert.equal(await status('frank'), true);

    const set = await wctl(['create', '-f', cap(w, '    bind_owner: true\n')]);
    assert.equal(set.code, 0, set.stderr);
    const frank = await login('frank');
    assert.equal(frank.code, 0, frank.stderr);
    assert.match(frank.stderr, /belongs to "erin"/);
    assert.equal(await status('frank'), false);
    const erin = await login('erin');
    assert.equal(erin.code, 0, erin.stderr);
    assert.equal(await status('erin'), true);
  });
});
