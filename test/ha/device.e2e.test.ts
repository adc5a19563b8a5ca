/**
 * Device trust across replicas (issue 7, point 6: "a device enrolled through one authenticates
 * through another"): two real `warden start` processes, each with its own data dir, proxy and
 * SSH node, sharing one PostgreSQL; one machine with its own swtpm (EK certificate), device
 * cache and empty DMI dir. The device is registered (`wctl devices add --enroll`) and enrolled
 * (`wsh device enroll`) through replica A; the user then logs in through replica B and B's
 * certificates carry the device; with the cluster in `required` mode, `wsh ssh` through B
 * works for that user and refuses a second user on a machine without an enrolled device.
 *
 * No second factor (cluster_auth_preference `second_factor: off`), so a user can log in as
 * often as the test needs.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  inviteAndSignUp,
  type PostgresServer,
  requirePostgres,
  requireSwtpm,
  runCli,
  type SwtpmProcess,
  setDeviceTrust,
  startPostgres,
  startSwtpm,
  startWarden,
  type WardenProcess,
  waitUntil,
  wardenStorage,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const DB_PASSWORD = 'db-secret-device-7';
const UNAUTHORIZED = 'ERROR: ssh: rejected: administratively prohibited (unauthorized device)';
const EXTENSIONS = ['warden-device-asset-tag', 'warden-device-credential-id', 'warden-device-id'];
const pgCheck = requirePostgres();
const setup = requireSwtpm();
const skip = pgCheck.skip || setup.skip;

/** Polls `cond` every 200 ms until it holds; fails after `limitMs` with `what`. */
const waitFor = (what: string, cond: () => Promise<boolean>, limitMs: number) =>
  waitUntil(what, cond, limitMs, 200);

describe('device trust across two replicas on one PostgreSQL', { skip }, () => {
  let pg: PostgresServer;
  let a: WardenProcess;
  let b: WardenProcess;
  let tpm: SwtpmProcess;
  /** The machine: alice's has the swtpm; bob's is a plain one (no TPM, never enrolled). */
  let machineEnv: NodeJS.ProcessEnv;

  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, {
      env: { ...(user === 'alice' ? machineEnv : {}), WARDEN_HOME: join(a.dir, `home-${user}`) },
      input,
    });
  /** wctl with a replica's admin identity (its data dir). */
  const wctl = (w: WardenProcess, args: string[]) =>
    runCli('wctl', args, { env: { WARDEN_DATA_DIR: w.dataDir, WARDEN_HOME: join(w.dir, 'home-admin') } });
  const login = (user: string, w: WardenProcess) =>
    wsh(user, ['login', `--proxy=${w.proxy}`, `--user=${user}`, `--ca-pin=${w.caPin}`], `${PASSWORD}\n`);
  const setMode = (mode: string) => setDeviceTrust(a, mode);

  before(async () => {
    pg = await startPostgres({ password: DB_PASSWORD });
    const { yaml: storage, env } = wardenStorage(pg, DB_PASSWORD, 'ha_device', { poolSize: 4 });
    [a, b, tpm] = await Promise.all([
      startWarden({ nodeName: 'node-a', configYaml: storage, env }),
      startWarden({ nodeName: 'node-b', configYaml: storage, env }),
      startSwtpm({ ekCert: true }),
    ]);
    const dmi = join(a.dir, 'dmi');
    mkdirSync(dmi);
    machineEnv = {
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(a.dir, 'device-cache'),
      WARDEN_DEVICE_DMI_DIR: dmi,
    };
    await setMode('optional');
    // Both users created and signed up through A.
    for (const user of ['alice', 'bob']) {
      await inviteAndSignUp(a, user, {
        roles: 'access',
        logins: 'root',
        password: PASSWORD,
        env: { ...(user === 'alice' ? machineEnv : {}), WARDEN_HOME: join(a.dir, `home-${user}`) },
      });
    }
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), tpm?.stop()]);
    await pg?.stop();
  });

  test('a device enrolled through A authenticates through B; required mode enforced through B', async () => {
    assert.equal(a.caPin, b.caPin);
    // Registered and enrolled through A.
    const l = await login('alice', a);
    assert.equal(l.code, 0, l.stderr);
    const tag = (await wsh('alice', ['device', 'asset-tag'])).stdout.trim();
    assert.match(tag, /^ek:[A-Za-z0-9_-]{43}$/);
    const add = await wctl(a, ['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']);
    assert.equal(add.code, 0, add.stderr);
    const token = /wsh device enroll --token=(\S+)/.exec(add.stdout)![1]!;
    const enroll = await wsh('alice', ['device', 'enroll', `--token=${token}`, `--proxy=${a.proxy}`]);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.equal(enroll.stdout.split('\n')[0], `Device "${tag}"/Linux enrolled`);

    // Logged in through B: B authenticates the device A enrolled.
    const lb = await login('alice', b);
    assert.equal(lb.code, 0, lb.stderr);
    assert.doesNotMatch(lb.stderr, /WARNING/);
    const status = await wsh('alice', ['status', '--format=json']);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { extensions: string[] };
    for (const e of EXTENSIONS)
      assert.ok(parsed.extensions.includes(e), `${e} in ${parsed.extensions.join()}`);
    assert.match(status.stdout, new RegExp(b.proxy.replace(/\./g, '\\.')), 'the profile is B’s');
    const ls = await wctl(b, ['devices', 'ls']);
    assert.match(ls.stdout, new RegExp(`${tag} +Linux +enrolled`));

    // Cluster required (set through A): bob, without a device, logged in through B, refused
    // by B's node once B has seen the change; alice, with it, gets through B to both nodes.
    await setMode('required');
    const lbob = await login('bob', b);
    assert.equal(lbob.code, 0, lbob.stderr);
    let refused = await wsh('bob', ['ssh', 'root@node-b', 'true']);
    await waitFor(
      'node-b to enforce required mode',
      async () => {
        if (refused.code !== 0) return true;
        refused = await wsh('bob', ['ssh', 'root@node-b', 'true']);
        return refused.code !== 0;
      },
      10_000,
    );
    assert.equal(refused.code, 255);
    assert.equal(refused.stderr.trim(), UNAUTHORIZED);
    const refusedA = await wsh('bob', ['ssh', 'root@node-a', 'true']);
    assert.equal(refusedA.stderr.trim(), UNAUTHORIZED);
    for (const node of ['node-b', 'node-a']) {
      const ssh = await wsh('alice', ['ssh', `root@${node}`, 'echo', `trusted-via-b-${node}`]);
      assert.equal(ssh.code, 0, ssh.stderr);
      assert.equal(ssh.stdout, `trusted-via-b-${node}\n`);
    }
  });
});
