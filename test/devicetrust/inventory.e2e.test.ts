/**
 * The trusted-device inventory as an admin meets it (issue 5, points 1, 6, 7 and the default
 * mode): a real `warden start`, every `wctl devices` command and its messages, the resource
 * commands (`wctl get|edit|rm devices/…`), device locks and their warnings, the audit trail,
 * and a new cluster in device trust mode `optional`, shown by `wctl get cluster_auth_preference`
 * with where the value came from. With swtpm: a device enrolled by `wsh device enroll`, then
 * unenrolled by `wctl edit`, enrolled again, and locked without a warning.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  requireTool,
  runCli,
  type SwtpmProcess,
  startSwtpm,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import { parse as parseYaml } from 'yaml';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe('wctl devices', () => {
  let w: WardenProcess;
  const wctl = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runCli('wctl', args, { env: { ...w.env, ...env } });

  async function ok(args: string[], env?: NodeJS.ProcessEnv) {
    const res = await wctl(args, env);
    assert.equal(res.code, 0, `wctl ${args.join(' ')}: ${res.stderr}`);
    return res;
  }
  async function fails(args: string[], message: RegExp | string, env?: NodeJS.ProcessEnv) {
    const res = await wctl(args, env);
    assert.equal(res.code, 1, `wctl ${args.join(' ')} should fail: ${res.stdout}`);
    if (typeof message === 'string') assert.equal(res.stderr.split('\n')[0], message);
    else assert.match(res.stderr, message);
    return res;
  }
  async function idOf(assetTag: string, os: string): Promise<string> {
    const list = JSON.parse((await ok(['devices', 'ls', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: { asset_tag: string; os_type: string };
    }[];
    const d = list.find((x) => x.spec.asset_tag === assetTag && x.spec.os_type === os);
    assert.ok(d, `${assetTag}/${os} listed`);
    return d.metadata.name;
  }

  before(async () => {
    w = await startWarden();
  });
  after(async () => {
    await w?.stop();
  });

  test('a new cluster runs device trust in optional mode, and says the value is the default', async () => {
    const cap = parseYaml((await ok(['get', 'cluster_auth_preference'])).stdout) as {
      metadata: { labels?: Record<string, string> };
      spec: { device_trust: { mode: string } };
    };
    assert.equal(cap.spec.device_trust.mode, 'optional');
    assert.equal(cap.metadata.labels?.['warden.dev/origin'], 'default');
  });

  test('ls on an empty inventory', async () => {
    assert.equal((await ok(['devices', 'ls'])).stdout, 'No devices found\n');
    assert.equal((await ok(['get', 'devices'])).stdout, 'No devices found\n');
    assert.deepEqual(JSON.parse((await ok(['devices', 'ls', '--format=json'])).stdout), []);
  });

  test('add, with and without --enroll; duplicates and bad input refused', async () => {
    const add = await ok(['devices', 'add', '--os=linux', '--asset-tag=C00AA0AAAA0A']);
    assert.equal(add.stdout, 'Device C00AA0AAAA0A/Linux added to the inventory\n');

    const enroll = await ok([
      'devices',
      'add',
      '--os=macos',
      '--asset-tag=MAC1',
      '--enroll',
      '--enroll-ttl=30m',
    ]);
    const lines = enroll.stdout.split('\n');
    assert.equal(lines[0], 'Device MAC1/macOS added to the inventory');
    assert.match(
      enroll.stdout,
      /Enrollment token for device MAC1\/macOS \(works once, expires in 30m, at \d{4}-\d\d-\d\dT[\d:.]+Z\):/,
    );
    const token = /^ {2}([A-Za-z0-9_-]{43})$/m.exec(enroll.stdout)?.[1];
    assert.ok(token, enroll.stdout);
    assert.match(
      enroll.stdout,
      new RegExp(`Run this on the device to enroll it:\\n\\n {2}wsh device enroll --token=${token}\\n$`),
    );

    await fails(
      ['devices', 'add', '--os=linux', '--asset-tag=C00AA0AAAA0A'],
      /^ERROR: device C00AA0AAAA0A\/Linux is already in the inventory \(device ID [0-9a-f-]{36}\)\n$/,
    );
    await fails(
      ['devices', 'add', '--os=beos', '--asset-tag=X1'],
      'ERROR: unknown OS "beos" (expected one of linux, macos, windows)',
    );
    await fails(
      ['devices', 'add', '--os=linux', '--asset-tag=a b'],
      /ERROR: invalid asset tag "a b": must not contain spaces/,
    );
    await fails(['devices', 'add', '--asset-tag=X1'], 'ERROR: --os is required (linux, macos or windows)');
    await fails(['devices', 'add', '--os=linux'], 'ERROR: --asset-tag is required');
    await fails(
      ['devices', 'add', '--os=linux', '--asset-tag=X1', '--enroll-ttl=1h'],
      'ERROR: --enroll-ttl needs --enroll',
    );
    await fails(
      ['devices', 'add', '--os=linux', '--asset-tag=X1', '--enroll', '--enroll-ttl=48h'],
      /ERROR: an enrollment token lives at most 24h/,
    );
    await fails(
      ['devices', 'add', '--os=linux', '--asset-tag=X1', '--enroll', '--enroll-ttl=soon'],
      /ERROR: .*--enroll-ttl/,
    );
  });

  test('ls: the table with owner and attestation, and JSON and YAML', async () => {
    const linux = await idOf('C00AA0AAAA0A', 'linux');
    const ls = (await ok(['devices', 'ls'])).stdout;
    const [header, rule, ...rows] = ls.trimEnd().split('\n');
    assert.match(
      header!,
      /^Asset Tag +OS +Enroll Status +Device ID +Owner +EK Certificate +Attestation +Identity$/,
    );
    assert.match(rule!, /^-+ -+ -+ -+ -+ -+ -+ -+$/);
    // A DMI asset tag is what the device says about itself: the table says so.
    assert.ok(
      rows.some((r) =>
        new RegExp(`^C00AA0AAAA0A +Linux +not enrolled +${linux} +asset tag: reported$`).test(r),
      ),
      ls,
    );
    assert.ok(
      rows.some((r) => /^MAC1 +macOS +not enrolled +[0-9a-f-]{36} +asset tag: reported$/.test(r)),
      ls,
    );
    assert.equal((await ok(['get', 'devices'])).stdout, ls);
    const yaml = parseYaml((await ok(['devices', 'ls', '--format=yaml'])).stdout) as { kind: string }[];
    assert.deepEqual(
      yaml.map((d) => d.kind),
      ['device', 'device'],
    );
  });

  test('enroll makes a new token by asset tag or device ID; the flags are checked', async () => {
    const res = await ok(['devices', 'enroll', '--asset-tag=MAC1', '--ttl=2h']);
    assert.match(res.stdout, /^Enrollment token for device MAC1\/macOS \(works once, expires in 2h, at /);
    assert.match(res.stdout, /wsh device enroll --token=[A-Za-z0-9_-]{43}\n$/);
    const id = await idOf('C00AA0AAAA0A', 'linux');
    assert.match((await ok(['devices', 'enroll', `--device-id=${id}`])).stdout, /expires in 1h/);
    for (const cmd of ['rm', 'enroll', 'lock']) {
      await fails(['devices', cmd], 'ERROR: either --device-id or --asset-tag must be set');
      await fails(
        ['devices', cmd, `--device-id=${id}`, '--asset-tag=MAC1'],
        'ERROR: use either --device-id or --asset-tag, not both',
      );
    }
    await fails(['devices', 'enroll', '--device-id=MAC1'], /ERROR: --device-id "MAC1" is not a device ID/);
    await fails(['devices', 'enroll', '--asset-tag=NOPE'], 'ERROR: device "NOPE" not found');
  });

  test('several devices with one asset tag: the commands ask for the device ID', async () => {
    await ok(['devices', 'add', '--os=windows', '--asset-tag=C00AA0AAAA0A']);
    const ask =
      /ERROR: several devices have asset tag "C00AA0AAAA0A" \((Linux|Windows): [0-9a-f-]{36}, (Linux|Windows): [0-9a-f-]{36}\); use the device ID/;
    await fails(['devices', 'rm', '--asset-tag=C00AA0AAAA0A'], ask);
    await fails(['devices', 'enroll', '--asset-tag=C00AA0AAAA0A'], ask);
    await fails(['devices', 'lock', '--asset-tag=C00AA0AAAA0A'], ask);
    await fails(['get', 'devices/C00AA0AAAA0A'], ask);
    const win = await idOf('C00AA0AAAA0A', 'windows');
    assert.equal((await ok(['devices', 'rm', `--device-id=${win}`])).stdout, `Device "${win}" removed\n`);
    await fails(['devices', 'rm', `--device-id=${win}`], `ERROR: device "${win}" not found`);
  });

  test('get devices/ID-or-TAG shows one device as YAML', async () => {
    const id = await idOf('MAC1', 'macos');
    const byTag = parseYaml((await ok(['get', 'devices/MAC1'])).stdout) as {
      kind: string;
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    assert.equal(byTag.kind, 'device');
    assert.equal(byTag.metadata.name, id);
    assert.equal(byTag.spec.enroll_status, 'not_enrolled');
    assert.equal(byTag.spec.os_type, 'macos');
    assert.equal(byTag.spec.source, 'api');
    const byId = parseYaml((await ok(['get', `device/${id}`])).stdout) as { metadata: { name: string } };
    assert.equal(byId.metadata.name, id);
    await fails(['get', 'devices/NOPE'], 'ERROR: device "NOPE" not found');
  });

  test('edit: descriptions change; a device is not enrolled by editing it', async () => {
    const id = await idOf('MAC1', 'macos');
    const script = join(w.dir, 'edit.sh');
    writeFileSync(script, '#!/bin/sh\nsed -i "$SED_EXPR" "$1"\n', { mode: 0o755 });
    const edit = (expr: string) => wctl(['edit', 'device/MAC1'], { EDITOR: script, SED_EXPR: expr });
    const described = await edit('s/^metadata:$/metadata:\\n  description: laptop of alice/');
    assert.equal(described.code, 0, described.stderr);
    assert.equal(described.stdout, `device "${id}" has been updated\n`);
    const after = parseYaml((await ok(['get', 'devices/MAC1'])).stdout) as {
      metadata: { description?: string };
    };
    assert.equal(after.metadata.description, 'laptop of alice');
    const forged = await edit('s/enroll_status: not_enrolled/enroll_status: enrolled/');
    assert.equal(forged.code, 1);
    assert.match(forged.stderr, /spec\.credential: an enrolled device needs spec\.credential/);
    const status = (
      parseYaml((await ok(['get', 'devices/MAC1'])).stdout) as { spec: { enroll_status: string } }
    ).spec.enroll_status;
    assert.equal(status, 'not_enrolled');
  });

  test('device locks: created, with a warning while the device is not enrolled or device trust is off', async () => {
    const id = await idOf('MAC1', 'macos');
    const lock = await ok(['devices', 'lock', '--asset-tag=MAC1', '--ttl=12h', '--message=stolen laptop']);
    assert.match(lock.stdout, /^Created a lock with name "[0-9a-f-]{36}"\.\n$/);
    assert.equal(
      lock.stderr,
      'WARNING: device MAC1/macOS is not enrolled: the lock has no effect until it is\n',
    );
    const plain = await ok(['lock', `--device=${id}`, '--ttl=12h']);
    assert.match(plain.stdout, /^Created a lock with name "[0-9a-f-]{36}"\.\n$/);
    assert.match(
      plain.stderr,
      /^WARNING: device MAC1\/macOS is not enrolled: the lock has no effect until it is\n$/,
    );
    const locks = JSON.parse((await ok(['get', 'locks', '--format=json'])).stdout) as {
      spec: { target: { device?: string }; message?: string };
    }[];
    assert.equal(locks.filter((l) => l.spec.target.device === id).length, 2);
    assert.ok(locks.some((l) => l.spec.message === 'stolen laptop'));
    await fails(
      ['devices', 'lock', '--asset-tag=MAC1', '--ttl=1h', '--expires=2030-01-01T00:00:00Z'],
      'ERROR: use --ttl or --expires, not both',
    );
    await fails(
      ['devices', 'lock', '--asset-tag=MAC1', '--expires=tomorrow'],
      /ERROR: invalid --expires "tomorrow"/,
    );

    // Device trust off: another warning; the preference now says it was set dynamically.
    const cap = join(w.dir, 'cap.yaml');
    writeFileSync(
      cap,
      'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\nspec:\n  type: local\n  second_factor: otp\n  device_trust:\n    mode: "off"\n',
    );
    assert.equal((await ok(['create', '-f', cap])).stdout, 'cluster auth preference has been updated\n');
    const stored = parseYaml((await ok(['get', 'cap'])).stdout) as {
      metadata: { labels?: Record<string, string> };
      spec: { device_trust: { mode: string } };
    };
    assert.equal(stored.spec.device_trust.mode, 'off');
    assert.equal(stored.metadata.labels?.['warden.dev/origin'], 'dynamic');
    const off = await ok(['devices', 'lock', `--device-id=${id}`]);
    assert.match(
      off.stderr,
      /^WARNING: device trust is off in this cluster .*the lock has no effect until device trust is enabled\n/,
    );
    assert.match(off.stderr, /WARNING: device MAC1\/macOS is not enrolled/);
    // Locking an asset tag by mistake with `wctl lock --device`: made, and warned.
    const tag = await ok(['lock', '--device=MAC1']);
    assert.match(
      tag.stderr,
      new RegExp(
        `"MAC1" is an asset tag, not a device ID: the lock has no effect; lock the device ID instead \\(${id}\\)`,
      ),
    );
    writeFileSync(cap, readFileSync(cap, 'utf8').replace('mode: "off"', 'mode: optional'));
    await ok(['create', '-f', cap]);
  });

  test('rm by asset tag and as a resource; the audit log has every change with its code', async () => {
    assert.equal((await ok(['devices', 'rm', '--asset-tag=MAC1'])).stdout, 'Device "MAC1" removed\n');
    const id = await idOf('C00AA0AAAA0A', 'linux');
    assert.equal((await ok(['rm', `devices/${id}`])).stdout, `device "${id}" has been deleted\n`);
    await fails(['rm', 'devices/C00AA0AAAA0A'], 'ERROR: device "C00AA0AAAA0A" not found');
    assert.equal((await ok(['devices', 'ls'])).stdout, 'No devices found\n');

    const events = JSON.parse(
      (
        await ok([
          'audit',
          'search',
          '--type=device.create',
          '--type=device.delete',
          '--type=device.update',
          '--type=device.token.create',
          '--format=json',
        ])
      ).stdout,
    ) as { type: string; code: string; user?: string; device_id?: string }[];
    const count = (type: string, code: string) =>
      events.filter((e) => e.type === type && e.code === code).length;
    assert.equal(count('device.create', 'W5000I'), 3);
    assert.equal(count('device.delete', 'W5001I'), 3);
    assert.ok(count('device.token.create', 'W5002I') >= 3);
    assert.equal(count('device.update', 'W5005I'), 1);
    assert.ok(events.every((e) => UUID.test(e.device_id ?? '')));
    // Tokens never reach the audit log.
    assert.ok(!JSON.stringify(events).match(/--token=/));
  });
});

const swtpm = requireTool('swtpm');

describe('an enrolled device (swtpm)', { skip: swtpm.skip }, () => {
  let w: WardenProcess;
  let tpm: SwtpmProcess;
  let env: NodeJS.ProcessEnv;
  let tag: string;
  const wctl = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    runCli('wctl', args, { env: { ...env, ...extra } });
  const enroll = (token: string) =>
    runCli('wsh', ['device', 'enroll', `--token=${token}`, `--proxy=${w.proxy}`, `--ca-pin=${w.caPin}`], {
      env,
      timeoutMs: 60_000,
    });
  const tokenOf = (stdout: string) => /wsh device enroll --token=(\S+)/.exec(stdout)![1]!;
  const device = async () =>
    parseYaml((await wctl(['get', `devices/${tag}`])).stdout) as {
      metadata: { name: string; revision?: string };
      spec: { enroll_status: string; credential?: { attestation_type: string; id: string } };
    };

  before(async () => {
    w = await startWarden();
    tpm = await startSwtpm();
    env = { ...w.env, ...tpm.env, HOME: w.dir };
    const res = await runCli('wsh', ['device', 'asset-tag'], { env });
    assert.equal(res.code, 0, res.stderr);
    tag = res.stdout.trim();
    // --format on the device commands that print data (issue 16).
    const json = await runCli('wsh', ['device', 'asset-tag', '--format=json'], { env });
    assert.deepEqual(JSON.parse(json.stdout), { asset_tag: tag });
    const collected = await runCli('wsh', ['device', 'collect', '--format=yaml'], { env });
    assert.equal(collected.code, 0, collected.stderr);
    assert.match(collected.stdout, /^os_type: linux$/m);
  });
  after(async () => {
    await tpm?.stop();
    await w?.stop();
  });

  test('enrolled with its token (spent once), unenrolled by edit, enrolled again, then locked', async () => {
    const add = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']);
    assert.equal(add.code, 0, add.stderr);
    const token = tokenOf(add.stdout);
    const first = await enroll(token);
    assert.equal(first.code, 0, first.stderr);
    const enrolled = await device();
    assert.equal(enrolled.spec.enroll_status, 'enrolled');
    assert.equal(enrolled.spec.credential?.attestation_type, 'tpm_ekpub');
    const id = enrolled.metadata.name;
    const ls = (await wctl(['devices', 'ls'])).stdout;
    assert.match(
      ls,
      new RegExp(
        `\\n${tag.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')} +Linux +enrolled +${id} +tpm_ekpub +asset tag: EK\\n`,
      ),
    );

    // The token was spent when the ceremony started; enrolled devices get no new tokens.
    const again = await enroll(token);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /invalid device enrollment token/);
    const refused = await wctl(['devices', 'enroll', `--device-id=${id}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is already enrolled; to enroll it again, unenroll it first/);

    // Unenroll: wctl edit with enroll_status: not_enrolled removes the credential.
    const script = join(w.dir, 'unenroll.sh');
    writeFileSync(
      script,
      '#!/bin/sh\nsed -i "s/enroll_status: enrolled/enroll_status: not_enrolled/" "$1"\n',
      {
        mode: 0o755,
      },
    );
    const edit = await wctl(['edit', `device/${id}`], { EDITOR: script });
    assert.equal(edit.code, 0, edit.stderr);
    assert.equal(edit.stdout, `device "${id}" has been updated\n`);
    const unenrolled = await device();
    assert.equal(unenrolled.spec.enroll_status, 'not_enrolled');
    assert.equal(unenrolled.spec.credential, undefined);

    // A new token enrolls it again.
    const fresh = await wctl(['devices', 'enroll', `--asset-tag=${tag}`]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const second = await enroll(tokenOf(fresh.stdout));
    assert.equal(second.code, 0, second.stderr);
    assert.equal((await device()).spec.enroll_status, 'enrolled');

    // Locking an enrolled device while device trust is on: no warning.
    const lock = await wctl(['devices', 'lock', `--asset-tag=${tag}`, '--ttl=12h']);
    assert.equal(lock.code, 0, lock.stderr);
    assert.match(lock.stdout, /^Created a lock with name "[0-9a-f-]{36}"\.\n$/);
    assert.equal(lock.stderr, '');

    const events = JSON.parse(
      (await wctl(['audit', 'search', '--type=device.token.spent', '--type=device.update', '--format=json']))
        .stdout,
    ) as { type: string; code: string; device_id?: string; unenrolled?: boolean }[];
    assert.equal(events.filter((e) => e.code === 'W5006I' && e.device_id === id).length, 2);
    assert.ok(events.some((e) => e.code === 'W5006W'));
    assert.ok(events.some((e) => e.code === 'W5005I' && e.unenrolled === true));
  });
});
