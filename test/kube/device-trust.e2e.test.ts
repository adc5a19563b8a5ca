/**
 * Device trust for Kubernetes with real parts: a real `warden start` whose kube_service forwards
 * to testkit's fake API server (a test double), real `kubectl`, and two machines each with its
 * own swtpm. alice's role `kube-strict` requires a trusted device for the `env: test` cluster:
 *
 *   machine B (no trusted device): kubectl get and exec are Forbidden with `unauthorized device`,
 *   nothing reaches the API server;
 *   machine A: refused the same way before enrollment; after `wsh device enroll` and a new
 *   `wsh login` the exec plugin's kube certificate stands for the device (the cached one from
 *   before is not reused), kubectl works, and the audit events name the device; `wctl lock
 *   --device` then refuses A with the lock message. The same for a kubeconfig of
 *   `wsh kube login --cert-files` on A: its files from before are refused, and `wsh login` renews
 *   them with a certificate that stands for the device.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type FakeKubeApiServer,
  kubectl,
  requireKubectl,
  requireSwtpm,
  runCli,
  startFakeKubeWithWebPod,
  type WardenProcess,
} from '@warden/testkit';
import { DeviceFleet, type TpmMachine } from '../support/device-fleet';

const tool = requireKubectl();
const setup = requireSwtpm();

type Machine = TpmMachine;

describe('device trust for Kubernetes with swtpm devices and real kubectl', {
  skip: tool.skip || setup.skip,
}, () => {
  let w: WardenProcess;
  let fake: FakeKubeApiServer;
  let a: Machine;
  let b: Machine;
  const fleet = new DeviceFleet();
  const wctl = (args: string[]) => fleet.wctl(args);
  const wsh = (m: Machine, args: string[], input?: string) => runCli('wsh', args, { env: m.env, input });
  const k = (m: Machine, args: string[]) => kubectl(m.env.KUBECONFIG!, args, { env: m.env });
  // Machine A's second kubeconfig, from `wsh kube login --cert-files`.
  const filesKc = () => join(w.dir, 'kubeconfig-a-files');
  const kf = (args: string[]) => kubectl(filesKc(), args, { env: { ...a.env, KUBECONFIG: filesKc() } });
  const certFileOf = () => /client-certificate: (\S+)/.exec(readFileSync(filesKc(), 'utf8'))![1]!;
  const login = (m: Machine) => fleet.login(m.env, 'alice', [`--ca-pin=${w.caPin}`]);
  const reachedAs = () => fake.requests.filter((q) => q.impersonateUser === 'alice').length;

  async function machine(name: string): Promise<Machine> {
    const m = await fleet.machine(name);
    m.env = fleet.env(m, 'alice', { KUBECONFIG: join(w.dir, `kubeconfig-${name}`) });
    return m;
  }

  before(async () => {
    fake = await startFakeKubeWithWebPod('developers');
    w = await fleet.start({
      configYaml: `auth_service:\n  authentication:\n    second_factor: "off"\n${fake.kubeServiceYaml('env: test')}`,
    });
    const role = join(w.dir, 'kube-strict.yaml');
    writeFileSync(
      role,
      'kind: role\nversion: v7\nmetadata: { name: kube-strict }\nspec:\n  options: { device_trust_mode: required }\n' +
        '  allow:\n    kubernetes_labels: { env: test }\n    kubernetes_groups: [developers]\n' +
        '    kubernetes_resources: [{ kind: "*", namespace: "*", name: "*", verbs: ["*"] }]\n',
    );
    const created = await wctl(['create', role]);
    assert.equal(created.code, 0, created.stderr);
    a = await machine('a');
    b = await machine('b');
    await fleet.signUp('alice', a.env, { roles: 'kube-strict', logins: 'nobody' });
    for (const m of [a, b]) {
      const l = await login(m);
      assert.equal(l.code, 0, l.stderr);
      const kl = await wsh(m, ['kube', 'login', 'fake']);
      assert.equal(kl.code, 0, kl.stderr);
    }
    const files = await runCli('wsh', ['kube', 'login', 'fake', '--cert-files'], {
      env: { ...a.env, KUBECONFIG: filesKc() },
    });
    assert.equal(files.code, 0, files.stderr);
  });

  after(async () => {
    await fleet.stop();
    await fake?.close();
  });

  test('machine B (no trusted device): get and exec are Forbidden "unauthorized device"; nothing reaches the API server', async () => {
    const before = reachedAs();
    const r = await k(b, ['get', 'pods']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error from server \(Forbidden\): unauthorized device/);
    const e = await k(b, ['exec', 'web', '--', 'true']);
    assert.notEqual(e.code, 0);
    assert.match(e.stderr, /unauthorized device/);
    assert.equal(reachedAs(), before);
  });

  test('machine A: refused before enrollment; enrolled and logged in again, kubectl works and the audit names the device', async () => {
    let r = await k(a, ['get', 'pods']);
    assert.match(r.stderr, /unauthorized device/, 'the same login without a device is refused');
    assert.match((await kf(['get', 'pods'])).stderr, /unauthorized device/, 'and so are its cert files');
    const filesBefore = readFileSync(certFileOf(), 'utf8');

    const cache = join(
      a.env.WARDEN_HOME!,
      'profiles',
      w.proxy.replace(/[^A-Za-z0-9.-]/g, '_'),
      'kube',
      'exec',
      'fake.cred',
    );
    assert.ok(existsSync(cache), 'the device-less credential was cached');
    const { deviceId } = await fleet.enroll(a.env);
    const l = await login(a);
    assert.equal(l.code, 0, l.stderr);
    // The exec plugin's shell script serves its cache without asking which login it is for:
    // new certificates (device authentication at enrollment, the new login) delete it.
    assert.equal(existsSync(cache), false, 'the device-less credential is no longer cached');

    // The kube certificate cached from the device-less login is not reused after the new login.
    r = await k(a, ['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^web\s+1\/1\s+Running/m);
    const last = fake.requests.filter((q) => q.resource === 'pods' && q.verb === 'list').at(-1)!;
    assert.equal(last.impersonateUser, 'alice');
    assert.deepEqual(last.impersonateGroups, ['developers']);
    const cached = readFileSync(cache, 'utf8');
    const x = await k(a, ['exec', 'web', '--', 'sh', '-c', 'echo trusted; exit 3']);
    assert.equal(x.code, 3);
    assert.equal(x.stdout, 'trusted\n');
    assert.equal(readFileSync(cache, 'utf8'), cached, 'served from the cache, still standing for the device');
    // `wsh login` renewed the --cert-files certificate: it stands for the device now.
    assert.notEqual(readFileSync(certFileOf(), 'utf8'), filesBefore);
    const f = await kf(['exec', 'web', '--', 'sh', '-c', 'echo from files']);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout, 'from files\n');
    // Machine B is still refused: the device is A's, not alice's.
    assert.match((await k(b, ['get', 'pods'])).stderr, /unauthorized device/);

    const search = async (type: string) => {
      const s = await wctl(['audit', 'search', `--type=${type}`, '--format=json']);
      assert.equal(s.code, 0, s.stderr);
      return JSON.parse(s.stdout) as { success?: boolean; device?: { id?: string }; exit_code?: number }[];
    };
    const reqs = await search('kube.request');
    assert.ok(reqs.some((e) => e.success === true && e.device?.id === deviceId));
    assert.ok(reqs.some((e) => e.success === false && e.device === undefined));
    assert.ok((await search('kube.exec.start')).some((e) => e.device?.id === deviceId));
    assert.ok((await search('kube.exec.end')).some((e) => e.device?.id === deviceId && e.exit_code === 3));

    // A device lock refuses the device-trusted kubectl with the lock's message.
    const lock = await wctl(['lock', `--device=${deviceId}`, '--message=laptop reported stolen']);
    assert.equal(lock.code, 0, lock.stderr);
    r = await k(a, ['get', 'pods']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Forbidden.*laptop reported stolen/);
    assert.match((await kf(['get', 'pods'])).stderr, /Forbidden.*laptop reported stolen/);
  });
});
