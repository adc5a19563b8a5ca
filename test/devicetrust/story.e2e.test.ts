/**
 * The device trust guide's story with real parts (issue 5's "done when"): a real `warden
 * start` with its SSH node, two machines — each its own swtpm, device cache and (empty) DMI
 * directory, so asset tags are EK-derived — and the built `wsh`/`wctl`.
 *
 *   register machine A, enroll it with a token (`Device "…"/Linux enrolled`), log in again,
 *   `wsh status` lists the three extensions, `wsh ssh` works; cluster `required`: machine B
 *   (not enrolled) is refused with the exact message while A works; back to `optional`, the
 *   preset `require-trusted-device` role enforces per role; `wctl devices ls` shows both;
 *   `wctl lock --device` ends A's open session and its next login runs without the device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  requireSwtpm,
  runCli,
  setDeviceTrust,
  signupWithTotp,
  spawnCli,
  type WardenProcess,
} from '@warden/testkit';
import { DeviceFleet, PASSWORD, type TpmMachine } from '../support/device-fleet';

const UNAUTHORIZED = 'ERROR: ssh: rejected: administratively prohibited (unauthorized device)';
// tpm2-tools writes the local CA's chain into the TPM's EK certificate chain NV indices.
const setup = requireSwtpm({ chain: true });

type Machine = TpmMachine;

describe('device trust: the guide, end to end', { skip: setup.skip }, () => {
  let w: WardenProcess;
  let a: Machine;
  let b: Machine;
  let tagA = '';
  let deviceIdA = '';

  const fleet = new DeviceFleet();
  const wctl = (args: string[]) => fleet.wctl(args);
  /** `wsh` as `user` on machine `m` (each pair has its own WARDEN_HOME). */
  const wsh = (m: Machine, user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: fleet.env(m, user), input });
  const login = (m: Machine, user: string) => fleet.login(fleet.env(m, user), user);
  const machine = (name: string) => fleet.machine(name, { ekCert: true, ekCertChain: true });

  async function addUser(user: string, roles: string): Promise<void> {
    const add = await wctl(['users', 'add', user, `--roles=${roles}`, '--logins=root']);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    for (const m of [a, b]) {
      const env = fleet.env(m, user);
      const s = await signupWithTotp(
        [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
        PASSWORD,
        env,
      );
      if (m === a) assert.equal(s.code, 0, s.stderr);
      // Signed up once; on the other machine only trust the proxy (the token is spent).
      const l = await fleet.login(env, user, [`--ca-pin=${w.caPin}`]);
      assert.equal(l.code, 0, l.stderr);
    }
  }

  const setMode = (mode: string) => setDeviceTrust(w, mode);

  before(async () => {
    // No second factor, so a test can log in as often as it needs to.
    w = await fleet.start({ nodeName: 'node-1', deviceTrust: 'optional' });
    a = await machine('a');
    b = await machine('b');
    await addUser('alice', 'access,editor');
  });
  after(() => fleet.stop());

  test('register and enroll machine A; its certificates now carry the device', async () => {
    const tag = await wsh(a, 'alice', ['device', 'asset-tag']);
    assert.equal(tag.code, 0, tag.stderr);
    tagA = tag.stdout.trim();
    assert.match(tagA, /^ek:[A-Za-z0-9_-]{43}$/);
    const add = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tagA}`, '--enroll']);
    assert.equal(add.code, 0, add.stderr);
    const token = /wsh device enroll --token=(\S+)/.exec(add.stdout)![1]!;
    const enroll = await wsh(a, 'alice', ['device', 'enroll', `--token=${token}`]);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.equal(enroll.stdout.split('\n')[0], `Device "${tagA}"/Linux enrolled`);
    assert.match(enroll.stdout, /now carry the trusted device/);
    const ls = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: {
        asset_tag: string;
        enroll_status: string;
        owner?: string;
        credential?: { attestation_type: string };
      };
    }[];
    const dev = ls.find((d) => d.spec.asset_tag === tagA)!;
    deviceIdA = dev.metadata.name;
    assert.equal(dev.spec.enroll_status, 'enrolled');
    assert.equal(dev.spec.owner, 'alice');
    assert.equal(dev.spec.credential?.attestation_type, 'tpm_ekcert');
  });

  test('log in again: wsh status lists the three device extensions; wsh ssh works', async () => {
    const l = await login(a, 'alice');
    assert.equal(l.code, 0, l.stderr);
    assert.doesNotMatch(l.stderr, /WARNING/);
    const status = await wsh(a, 'alice', ['status', '--format=json']);
    const ext = (JSON.parse(status.stdout) as { extensions: string[] }).extensions;
    for (const e of ['warden-device-asset-tag', 'warden-device-credential-id', 'warden-device-id'])
      assert.ok(ext.includes(e), e);
    assert.match(
      (await wsh(a, 'alice', ['status'])).stdout,
      /warden-device-asset-tag, warden-device-credential-id, warden-device-id/,
    );
    const ssh = await wsh(a, 'alice', ['ssh', 'root@node-1', 'echo', 'from-a']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout, 'from-a\n');
    const audit = await wctl(['audit', 'search', '--type=session.start', '--user=alice', '--format=json']);
    const starts = JSON.parse(audit.stdout) as { device?: { id: string } }[];
    assert.ok(
      starts.some((e) => e.device?.id === deviceIdA),
      'the session is audited with the device',
    );
  });

  test('cluster required: machine B (not enrolled) is refused with the exact message; A still works', async () => {
    await setMode('required');
    const l = await login(b, 'alice');
    assert.equal(l.code, 0, l.stderr);
    const status = JSON.parse((await wsh(b, 'alice', ['status', '--format=json'])).stdout) as {
      extensions: string[];
    };
    assert.ok(!status.extensions.includes('warden-device-id'));
    const refused = await wsh(b, 'alice', ['ssh', 'root@node-1', 'true']);
    assert.equal(refused.code, 255, 'a refusal by Warden exits 255, as OpenSSH does for its own failures');
    assert.equal(refused.stderr.trim(), UNAUTHORIZED);
    const ok = await wsh(a, 'alice', ['ssh', 'root@node-1', 'echo', 'still-a']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'still-a\n');
  });

  test('optional cluster, preset require-trusted-device role: enforced per role', async () => {
    await setMode('optional');
    await addUser('bob', 'access,require-trusted-device');
    // bob on B (no trusted device): refused; alice on B (no such role): allowed.
    const bobB = await wsh(b, 'bob', ['ssh', 'root@node-1', 'true']);
    assert.equal(bobB.stderr.trim(), UNAUTHORIZED);
    const aliceB = await wsh(b, 'alice', ['ssh', 'root@node-1', 'echo', 'optional']);
    assert.equal(aliceB.code, 0, aliceB.stderr);
    // bob on A: the login authenticates the enrolled device for him too.
    const bobA = await wsh(a, 'bob', ['ssh', 'root@node-1', 'echo', 'bob-on-a']);
    assert.equal(bobA.code, 0, bobA.stderr);
    assert.equal(bobA.stdout, 'bob-on-a\n');
  });

  test('wctl devices ls shows both machines', async () => {
    const tagB = (await wsh(b, 'alice', ['device', 'asset-tag'])).stdout.trim();
    assert.notEqual(tagB, tagA);
    assert.equal((await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tagB}`])).code, 0);
    const ls = await wctl(['devices', 'ls']);
    assert.match(ls.stdout, /^Asset Tag +OS +Enroll Status +Device ID/);
    assert.match(ls.stdout, new RegExp(`${tagA} +Linux +enrolled +${deviceIdA}`));
    assert.match(ls.stdout, new RegExp(`${tagB} +Linux +not enrolled`));
  });

  test("a device lock ends A's open session, refuses new ones, and its next login runs without the device", async () => {
    const session = spawnCli('wsh', ['ssh', 'root@node-1', 'echo ready; sleep 60'], {
      env: fleet.env(a, 'alice'),
    });
    // The lock must end an open session, not refuse one still starting (a fixed 1.5 s wait
    // raced the session's start on a loaded machine): wait until it runs.
    const until = Date.now() + 20_000;
    while (!session.stdout().includes('ready') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(session.stdout(), /ready/, session.stderr());
    const lock = await wctl(['lock', `--device=${deviceIdA}`, '--ttl=12h']);
    assert.equal(lock.code, 0, lock.stderr);
    assert.match(lock.stdout, /^Created a lock with name "/);
    const code = await Promise.race([
      session.exited,
      new Promise<string>((r) => setTimeout(() => r('timeout'), 15_000)),
    ]);
    assert.notEqual(code, 'timeout', 'the locked session ended');
    const message = `lock targeting Device:"${deviceIdA}" is in force`;
    const again = await wsh(a, 'alice', ['ssh', 'root@node-1', 'true']);
    assert.equal(again.code, 255);
    assert.match(again.stderr, new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const l = await login(a, 'alice');
    assert.equal(l.code, 0, l.stderr);
    assert.match(
      l.stderr,
      new RegExp(`WARNING: device authentication failed: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
    assert.match(l.stderr, /logged in without the trusted device/);
    assert.doesNotMatch(l.stdout, /warden-device-id/);
  });
});
