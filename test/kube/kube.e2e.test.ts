/**
 * Kubernetes through Warden with the real `kubectl`: a real `warden start` whose kube_service
 * forwards to testkit's fake API server (a test double) with its own admin credential and the
 * user's impersonation; `wsh kube ls|login|logout` and the exec credential plugin; discovery,
 * get/describe, apply (client- and server-side), delete, get -w, logs -f, exec exit codes,
 * port-forward, auth can-i/whoami; kubernetes_resources and impersonation refusals; locks that
 * end open streams; audit events.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Authenticator,
  type FakeKubeApiServer,
  inviteAndSignUp,
  kubectl,
  requireKubectl,
  runCli,
  spawnCli,
  spawnKubectl,
  startFakeKubeApiServer,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import { parse as parseYaml } from 'yaml';

const PASSWORD = 'correct horse battery staple';
const tool = requireKubectl();
const LOOP = 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done';

const ROLES = `kind: role
version: v7
metadata: { name: kube-dev }
spec:
  allow:
    kubernetes_labels: { env: test }
    kubernetes_groups: [developers, "{{internal.kube_groups}}"]
    kubernetes_resources: [{ kind: "*", namespace: "*", name: "*", verbs: ["*"] }]
---
kind: role
version: v7
metadata: { name: kube-viewer }
spec:
  allow:
    kubernetes_labels: { env: test }
    kubernetes_groups: [viewers]
    kubernetes_resources: [{ kind: pod, namespace: default, verbs: [get, list, watch] }]
---
kind: role
version: v7
metadata: { name: kube-exec-viewer }
spec:
  allow:
    kubernetes_labels: { env: test }
    kubernetes_groups: [viewers]
    kubernetes_resources: [{ kind: "*", namespace: "*", name: "*", verbs: ["*"] }]
---
kind: role
version: v7
metadata: { name: kube-strict }
spec:
  options: { device_trust_mode: required }
  allow:
    kubernetes_labels: { env: test }
    kubernetes_groups: [developers]
`;

describe('Kubernetes through Warden with real kubectl', { skip: tool.skip }, () => {
  let w: WardenProcess;
  let fake: FakeKubeApiServer;
  let echo: Server;
  let echoPort: number;
  const home = (user: string) => join(w.dir, `home-${user}`);
  const kc = (user: string) => join(w.dir, `kubeconfig-${user}`);
  const userEnv = (user: string) => ({ ...w.env, WARDEN_HOME: home(user), KUBECONFIG: kc(user) });
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: userEnv(user), input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });
  const k = (user: string, args: string[], input?: string) =>
    kubectl(kc(user), args, { input, env: userEnv(user) });

  async function addUser(user: string, roles: string, traits = ''): Promise<void> {
    const s = await inviteAndSignUp(w, user, {
      roles,
      logins: 'nobody',
      extra: traits ? [traits] : [],
      password: PASSWORD,
      env: { ...w.env, WARDEN_HOME: home(user) },
    });
    const otp = new Authenticator(s.uri!);
    otp.markUsed();
    const l = await wsh(
      user,
      ['login', `--proxy=${w.proxy}`, `--user=${user}`],
      `${PASSWORD}\n${await otp.code()}\n`,
    );
    assert.equal(l.code, 0, l.stderr);
  }

  before(async () => {
    fake = await startFakeKubeApiServer({
      rules: [
        { groups: ['developers'], verbs: ['*'], resources: ['*'] },
        { groups: ['viewers'], verbs: ['get', 'list', 'watch'], resources: ['pods', 'pods/log'] },
      ],
    });
    fake.create('pods', {
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: { containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', LOOP] }] },
    });
    echo = createServer((c) => c.on('data', (b) => c.write(Buffer.concat([Buffer.from('echo:'), b]))));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    w = await startWarden({
      configYaml: fake.kubeServiceYaml('env: test'),
    });
    writeFileSync(join(w.dir, 'roles.yaml'), ROLES);
    const c = await wctl(['create', join(w.dir, 'roles.yaml')]);
    assert.equal(c.code, 0, c.stderr);
    await addUser('alice', 'kube-dev');
    await addUser('bob', 'kube-viewer');
    for (const u of ['alice', 'bob']) {
      const l = await wsh(u, ['kube', 'login', 'fake']);
      assert.equal(l.code, 0, l.stderr);
    }
  });
  after(async () => {
    echo?.close();
    await w?.stop();
    await fake?.close();
  });

  test('wsh kube ls and login: a context whose credential is the wsh exec plugin', async () => {
    const ls = await wsh('alice', ['kube', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^fake\s+env=test$/m);
    const json = JSON.parse((await wsh('alice', ['kube', 'ls', '--format=json'])).stdout);
    assert.deepEqual(json, [{ name: 'fake', labels: { env: 'test' } }]);
    const cfg = readFileSync(kc('alice'), 'utf8');
    assert.match(cfg, /current-context: .*-fake/);
    assert.match(cfg, /server: https:\/\/127\.0\.0\.1:\d+\/kube\/fake/);
    assert.match(cfg, /tls-server-name: kube\.localhost$/m);
    assert.match(cfg, /client\.authentication\.k8s\.io\/v1/);
    const cred = await wsh('alice', ['kube', 'credentials', '--cluster=fake']);
    const ec = JSON.parse(cred.stdout);
    assert.equal(ec.kind, 'ExecCredential');
    assert.match(ec.status.clientCertificateData, /BEGIN CERTIFICATE/);
    assert.ok(Date.parse(ec.status.expirationTimestamp) > Date.now());
  });

  test('Kubernetes has its own TLS server name: kube.<proxy> in the proxy certificate, nothing else there, and a certificate bound to its cluster', async () => {
    const cfg = readFileSync(kc('alice'), 'utf8');
    // kubectl verified the proxy's certificate for kube.localhost (the host CA, no insecure flag).
    assert.doesNotMatch(cfg, /insecure-skip-tls-verify/);
    // `--raw` drops the server URL's path: the kube certificate's cluster answers.
    const r = await k('alice', ['get', '--raw', '/version']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).gitVersion);
    const [host, port] = [w.proxy.split(':')[0]!, Number(w.proxy.split(':')[1])];
    const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(cfg)![1]!, 'base64').toString();
    const profile = join(home('alice'), 'profiles', w.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const login = {
      cert: readFileSync(join(profile, 'tls.pem'), 'utf8'),
      key: readFileSync(join(profile, 'key.pem'), 'utf8'),
    };
    const get = (servername: string, path: string, client: { cert?: string; key?: string } = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const q = httpsRequest({ host, port, path, servername, ca, ...client, method: 'GET' }, (res) => {
          let body = '';
          res.on('data', (b: Buffer) => {
            body += b;
          });
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        q.on('error', reject);
        q.end();
      });
    // The kube name serves only Kubernetes paths: not the API, not the Web UI.
    let g = await get('kube.localhost', '/v1/ping');
    assert.equal(g.status, 401);
    assert.match(g.body, /Kubernetes through Warden needs a Warden client certificate/);
    assert.equal((await get('kube.localhost', '/web')).status, 401);
    g = await get('kube.localhost', '/v1/ping', login);
    assert.equal(g.status, 404, 'a login certificate names no cluster');
    assert.match(g.body, /not a Kubernetes path/);
    // A login certificate (wsh proxy kube) reaches a cluster by its path.
    g = await get('kube.localhost', '/kube/fake/api/v1/namespaces/default/pods', login);
    assert.equal(g.status, 200, g.body);
    assert.equal(JSON.parse(g.body).items[0].metadata.name, 'web');
    assert.equal((await get('localhost', '/v1/ping')).status, 200, 'the API stays on the proxy name');
    // A Kubernetes path on the proxy's own name says where Kubernetes went.
    g = await get('localhost', '/kube/fake/api/v1/namespaces/default/pods');
    assert.equal(g.status, 403);
    assert.match(g.body, /TLS server name kube\.localhost/);
    const old = join(w.dir, 'kubeconfig-old');
    writeFileSync(old, cfg.replace(/^\s*tls-server-name: .*\n/m, ''));
    const o = await kubectl(old, ['get', 'pods'], { env: { ...userEnv('alice'), KUBECONFIG: old } });
    assert.notEqual(o.code, 0);
    assert.match(
      o.stderr,
      /Error from server \(Forbidden\): Kubernetes is served under the TLS server name kube\.localhost/,
    );
    // The exec plugin's certificate was issued for "fake": another cluster path refuses it.
    const other = join(w.dir, 'kubeconfig-other');
    writeFileSync(other, cfg.replace(/\/kube\/fake\b/, '/kube/other'));
    const x = await kubectl(other, ['get', 'pods'], { env: { ...userEnv('alice'), KUBECONFIG: other } });
    assert.equal(x.code, 1);
    assert.match(x.stderr, /Forbidden.*issued for kube_cluster "fake", not "other"/);
  });

  test('get and describe go through with Warden’s credential and the roles’ impersonation', async () => {
    const r = await k('alice', ['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^web\s+1\/1\s+Running/m);
    const rec = fake.requests.filter((q) => q.resource === 'pods' && q.verb === 'list').at(-1)!;
    assert.equal(rec.authUser, 'fake-admin', 'the API server sees kube_service’s own credential');
    assert.equal(rec.impersonateUser, 'alice');
    assert.deepEqual(rec.impersonateGroups, ['developers']);
    const d = await k('alice', ['describe', 'pod', 'web']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^Name:\s+web$/m);
    const who = await k('alice', ['auth', 'whoami', '-o', 'json']);
    assert.equal(JSON.parse(who.stdout).status.userInfo.username, 'alice');
    const can = await k('alice', ['auth', 'can-i', 'delete', 'configmaps']);
    assert.equal(can.stdout.trim(), 'yes');
  });

  test('apply (client- and server-side), delete, and get -w through Warden', async () => {
    const w1 = spawnKubectl(kc('alice'), ['get', 'configmaps', '-w'], { env: userEnv('alice') });
    try {
      // An empty list prints nothing: wait until the watch reached the API server.
      while (
        !fake.requests.some(
          (q) => q.verb === 'watch' && q.resource === 'configmaps' && q.impersonateUser === 'alice',
        )
      )
        await new Promise((r) => setTimeout(r, 20));
      const cm = (v: string) =>
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: "${v}"\n`;
      let r = await k('alice', ['apply', '-f', '-'], cm('1'));
      assert.equal(r.code, 0, r.stderr);
      r = await k('alice', ['apply', '-f', '-'], cm('2'));
      assert.match(r.stdout, /configmap\/app configured/);
      r = await k('alice', ['apply', '--server-side', '-f', '-'], cm('3'));
      assert.match(r.stdout, /serverside-applied/);
      assert.equal(fake.get('configmaps', 'app')?.data.v, '3');
      await w1.waitFor(/^app\s+1\s+/m);
      r = await k('alice', ['delete', 'configmap', 'app']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fake.get('configmaps', 'app'), undefined);
    } finally {
      w1.kill();
    }
  });

  test('logs -f, exec exit codes and stdin, port-forward through Warden', async () => {
    const f = spawnKubectl(kc('alice'), ['logs', '-f', 'web'], { env: userEnv('alice') });
    try {
      const m = await f.waitFor(/tick (\d+)\n/);
      await f.waitFor(new RegExp(`tick ${Number(m[1]) + 2}\\n`));
    } finally {
      f.kill();
    }
    let r = await k('alice', ['exec', 'web', '--', 'sh', '-c', 'echo out; exit 5']);
    assert.equal(r.code, 5);
    assert.equal(r.stdout, 'out\n');
    r = await k('alice', ['exec', '-i', 'web', '--', 'cat'], 'through warden\n');
    assert.equal(r.stdout, 'through warden\n');
    const pf = spawnKubectl(kc('alice'), ['port-forward', 'pod/web', `:${echoPort}`], {
      env: userEnv('alice'),
    });
    try {
      const p = await pf.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/);
      const got = await new Promise<string>((resolve, reject) => {
        const c = netConnect(Number(p[1]), '127.0.0.1', () => c.write('hello'));
        c.on('data', (b) => {
          resolve(b.toString());
          c.end();
        });
        c.on('error', reject);
      });
      assert.equal(got, 'echo:hello');
    } finally {
      pf.kill();
    }
  });

  test('large bodies arrive whole: a configmap past the one-write size both ways, 2,000,000 lines of exec output', async () => {
    // A 2.7 MB value: the request body is piped, the response is relayed past ONE_WRITE_MAX.
    const value = randomBytes(2 * 1024 * 1024).toString('base64');
    const file = join(w.dir, 'big.txt');
    writeFileSync(file, value);
    let r = await k('alice', ['create', 'configmap', 'big', `--from-file=f=${file}`]);
    assert.equal(r.code, 0, r.stderr);
    r = await k('alice', ['get', 'configmap', 'big', '-o', 'jsonpath={.data.f}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, value.length);
    assert.ok(r.stdout === value, 'the configmap came back unchanged');
    assert.equal((await k('alice', ['delete', 'configmap', 'big'])).code, 0);
    // ~15 MB through the exec relay (corked writes, backpressure), in order.
    r = await k('alice', ['exec', 'web', '--', 'seq', '1', '2000000'], undefined);
    assert.equal(r.code, 0, r.stderr);
    const expected = `${Array.from({ length: 2_000_000 }, (_, i) => i + 1).join('\n')}\n`;
    assert.equal(r.stdout.length, expected.length);
    assert.ok(r.stdout === expected, 'the exec output came through whole and in order');
  });

  test('kubernetes_resources and impersonation refusals are Forbidden Status objects', async () => {
    let r = await k('bob', ['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fake.requests.filter((q) => q.verb === 'list').at(-1)?.impersonateUser, 'bob');
    r = await k('bob', ['delete', 'pod', 'web']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Error from server \(Forbidden\): access to kube_cluster denied: user "bob" may not delete pods "web"/,
    );
    assert.ok(fake.get('pods', 'web'), 'the refused delete never reached the API server');
    r = await k('bob', ['get', 'secrets']);
    assert.match(r.stderr, /Forbidden/);
    r = await k('alice', ['get', 'pods', '--as=root']);
    assert.match(
      r.stderr,
      /Error from server \(Forbidden\): impersonation denied: user "alice" may not impersonate Kubernetes user "root"/,
    );
    r = await k('alice', ['get', 'pods', '--as=alice', '--as-group=system:masters']);
    assert.match(r.stderr, /may not impersonate Kubernetes group\(s\) "system:masters"/);
    r = await k('alice', ['get', 'pods', '--as=alice', '--as-group=developers']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('the API server’s own refusal of an exec reaches kubectl as it does directly, not Warden’s refusal of the SPDY retry', async () => {
    // Warden lets grace exec (kubernetes_resources: all), the API server's RBAC does not (group
    // viewers). kubectl retries a refused WebSocket upgrade over SPDY, which Warden does not
    // relay: the retry gets the API server's answer to the WebSocket attempt.
    await addUser('grace', 'kube-exec-viewer');
    assert.equal((await wsh('grace', ['kube', 'login', 'fake'])).code, 0);
    const execs = fake.execs.length;
    const r = await k('grace', ['exec', 'web', '--', 'sh', '-c', 'echo ran']);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stdout, /ran/);
    const direct = await kubectl(fake.writeKubeconfig(join(w.dir, 'direct.kubeconfig')), [
      'exec',
      'web',
      '--as=grace',
      '--as-group=viewers',
      '--',
      'sh',
      '-c',
      'echo ran',
    ]);
    assert.equal(direct.code, 1, direct.stderr);
    assert.match(
      direct.stderr,
      /^Error from server \(Forbidden\): pods\/exec "web" is forbidden: User "grace" cannot create resource "pods\/exec"/m,
    );
    assert.equal(r.stderr, direct.stderr, 'kubectl prints what it prints without Warden');
    assert.doesNotMatch(r.stderr, /SPDY/);
    assert.equal(fake.execs.length, execs, 'nothing ran');
  });

  test('a lock ends open watch, logs -f, exec and port-forward streams, and refuses new requests', async () => {
    await addUser('carol', 'kube-dev');
    assert.equal((await wsh('carol', ['kube', 'login', 'fake'])).code, 0);
    const env = userEnv('carol');
    const watch = spawnKubectl(kc('carol'), ['get', 'pods', '-w'], { env });
    const logs = spawnKubectl(kc('carol'), ['logs', '-f', 'web'], { env });
    const exec = spawnKubectl(kc('carol'), ['exec', 'web', '--', 'sh', '-c', 'echo started; sleep 60'], {
      env,
    });
    const pf = spawnKubectl(kc('carol'), ['port-forward', 'pod/web', `:${echoPort}`], { env });
    try {
      await watch.waitFor(/web\s+1\/1/);
      await logs.waitFor(/tick \d+/);
      await exec.waitFor(/started/);
      await pf.waitFor(/Forwarding from/);
      const lock = await wctl(['lock', '--user=carol', '--message=kube access revoked']);
      assert.equal(lock.code, 0, lock.stderr);
      const t0 = Date.now();
      const codes = await Promise.all([watch.exited, logs.exited, exec.exited, pf.exited]);
      assert.ok(Date.now() - t0 < 3_000, `streams ended ${Date.now() - t0} ms after the lock`);
      assert.notEqual(codes[2], 0);
      assert.match(exec.output(), /kube access revoked/);
      const r = await k('carol', ['get', 'pods']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Forbidden.*kube access revoked/);
    } finally {
      for (const p of [watch, logs, exec, pf]) p.kill();
    }
  });

  test('the exec plugin: a /bin/sh script serves the cached credential without starting wsh; an expired one falls back to wsh; logouts delete it', async () => {
    await addUser('gina', 'kube-dev');
    const l = await wsh('gina', ['kube', 'login', 'fake']);
    assert.equal(l.code, 0, l.stderr);
    const exec = parseYaml(readFileSync(kc('gina'), 'utf8')).users[0].user.exec;
    assert.equal(exec.command, '/bin/sh');
    const cache = join(
      home('gina'),
      'profiles',
      w.proxy.replace(/[^A-Za-z0-9.-]/g, '_'),
      'kube',
      'exec',
      'fake.cred',
    );
    assert.equal(exec.args[3], cache);
    assert.equal(statSync(cache).mode & 0o777, 0o600, '`wsh kube login` cached a first credential');
    // Only the shell ignores the third line (the login it was issued for): wsh would replace a
    // credential whose login does not match, so an unchanged file after kubectl means the
    // script served it.
    const [until, json] = readFileSync(cache, 'utf8').split('\n');
    writeFileSync(cache, `${until}\n${json}\nnot-this-login\n`);
    let r = await k('gina', ['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^web\s+1\/1/m);
    assert.equal(fake.requests.at(-1)!.impersonateUser, 'gina');
    assert.equal(readFileSync(cache, 'utf8'), `${until}\n${json}\nnot-this-login\n`, 'served by the script');
    // Expired (its first line is past): the script runs wsh, which issues and caches a new one.
    writeFileSync(cache, `${Math.floor(Date.now() / 1000) - 1}\n${json}\nnot-this-login\n`);
    r = await k('gina', ['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    const [until2, json2, login2] = readFileSync(cache, 'utf8').split('\n');
    assert.ok(Number(until2) * 1000 > Date.now() + 30 * 60_000, 'valid for most of an hour');
    assert.notEqual(json2, json, 'a new certificate');
    assert.match(login2!, /^[0-9a-f]{64}$/);
    assert.equal(fake.requests.at(-1)!.impersonateUser, 'gina');
    // `wsh kube logout` deletes it with the context; `wsh logout` deletes the whole profile, and
    // the script's fallback then says why kubectl has no credential.
    assert.equal((await wsh('gina', ['kube', 'logout', 'fake'])).code, 0);
    assert.equal(existsSync(cache), false);
    assert.equal((await wsh('gina', ['kube', 'login', 'fake'])).code, 0);
    assert.ok(existsSync(cache));
    assert.equal((await wsh('gina', ['logout'])).code, 0);
    assert.equal(existsSync(cache), false);
    r = await k('gina', ['get', 'pods']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not logged in/);
  });

  test('wsh kube login --cert-files: kubectl reads a certificate and key from 0600 files (no exec plugin), valid as long as the login; locks still apply; logout removes them', async () => {
    await addUser('frank', 'kube-dev');
    const l = await wsh('frank', ['kube', 'login', 'fake', '--cert-files']);
    assert.equal(l.code, 0, l.stderr);
    const cfg = readFileSync(kc('frank'), 'utf8');
    assert.doesNotMatch(cfg, /exec:|client\.authentication/);
    const certFile = /client-certificate: (\S+)/.exec(cfg)![1]!;
    const keyFile = /client-key: (\S+)/.exec(cfg)![1]!;
    assert.ok(certFile.startsWith(home('frank')), certFile);
    for (const f of [certFile, keyFile]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.equal(statSync(dirname(certFile)).mode & 0o777, 0o700);
    // Valid until the login certificate expires (not the exec plugin's hour).
    const profileDir = dirname(dirname(dirname(dirname(certFile))));
    const loginEnd = Date.parse(new X509Certificate(readFileSync(join(profileDir, 'tls.pem'))).validTo);
    const kubeEnd = Date.parse(new X509Certificate(readFileSync(certFile)).validTo);
    assert.ok(Math.abs(kubeEnd - loginEnd) <= 1_000, `${kubeEnd} vs ${loginEnd}`);
    // kubectl needs no wsh at all: not even on PATH.
    const env = { ...userEnv('frank'), PATH: '/usr/bin:/bin' };
    const r = await kubectl(kc('frank'), ['get', 'pods'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^web\s+1\/1/m);
    assert.equal(fake.requests.at(-1)!.impersonateUser, 'frank');
    const x = await kubectl(kc('frank'), ['exec', 'web', '--', 'sh', '-c', 'echo files; exit 4'], { env });
    assert.equal(x.code, 4);
    assert.equal(x.stdout, 'files\n');
    // The certificate stands for the recorded identity: a lock refuses it at once.
    const lock = await wctl(['lock', '--user=frank', '--message=frank is off the project', '--ttl=1m']);
    assert.equal(lock.code, 0, lock.stderr);
    const refused = await kubectl(kc('frank'), ['get', 'pods'], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Forbidden.*frank is off the project/);
    const out = await wsh('frank', ['kube', 'logout', 'fake']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(existsSync(certFile), false);
    assert.equal(existsSync(keyFile), false);
    assert.doesNotMatch(readFileSync(kc('frank'), 'utf8'), /kube\/fake/);
  });

  test('audit: kube.request with verb, resource and status; exec and port-forward sessions', async () => {
    const search = async (type: string) => {
      const r = await wctl(['audit', 'search', `--type=${type}`, '--format=json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Record<string, unknown>[];
    };
    const reqs = await search('kube.request');
    assert.ok(
      reqs.some(
        (e) => e.user === 'alice' && e.verb === 'list' && e.kube_resource === 'pods' && e.status === 200,
      ),
    );
    assert.ok(reqs.some((e) => e.user === 'bob' && e.verb === 'delete' && e.success === false));
    const execs = await search('kube.exec.start');
    assert.ok(execs.some((e) => e.user === 'alice' && /echo out/.test(String(e.command))));
    const ends = await search('kube.exec.end');
    // The exit code comes from the channel-3 Status the API server sent.
    const endOf = (cmd: string) => ends.find((e) => e.user === 'alice' && e.command === cmd);
    assert.equal(endOf('sh -c echo out; exit 5')?.exit_code, 5);
    assert.equal(endOf('cat')?.exit_code, 0);
    assert.ok(ends.some((e) => e.user === 'carol' && /kube access revoked/.test(String(e.terminated_by))));
    assert.ok((await search('kube.portforward.start')).length > 0);
  });

  test('device trust required by a role: no trusted device → Forbidden "unauthorized device", nothing reaches the API server', async () => {
    await addUser('dave', 'kube-strict');
    assert.equal(
      (await wsh('dave', ['kube', 'login', 'fake'])).code,
      0,
      'the cluster is listed (device trust aside)',
    );
    const before = fake.requests.filter((q) => q.impersonateUser === 'dave').length;
    const r = await k('dave', ['get', 'pods']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error from server \(Forbidden\): unauthorized device/);
    const e = await k('dave', ['exec', 'web', '--', 'true']);
    assert.match(e.stderr, /unauthorized device/);
    assert.equal(fake.requests.filter((q) => q.impersonateUser === 'dave').length, before);
  });

  test('wsh proxy kube: a loopback listener for tools without exec plugins; kubectl get, exec and a lock through it', async () => {
    await addUser('erin', 'kube-dev');
    const proxy = spawnCli('wsh', ['proxy', 'kube', 'fake', '-p', '0'], { env: userEnv('erin') });
    try {
      const until = Date.now() + 20_000;
      while (!/current-context: fake\n/.test(proxy.stdout()) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      const out = proxy.stdout();
      const local = /server: (http:\/\/127\.0\.0\.1:\d+\/kube\/fake)/.exec(out);
      assert.ok(local, out + proxy.stderr());
      const cfg = join(w.dir, 'kubeconfig-proxy-erin');
      writeFileSync(cfg, out.slice(out.indexOf('apiVersion: v1')));
      const env = { ...userEnv('erin'), KUBECONFIG: cfg };
      let r = await kubectl(cfg, ['get', 'pods'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^web\s+1\/1\s+Running/m);
      const rec = fake.requests.filter((q) => q.resource === 'pods' && q.verb === 'list').at(-1)!;
      assert.equal(rec.impersonateUser, 'erin', 'the listener speaks with erin’s certificate');
      r = await kubectl(cfg, ['exec', 'web', '--', 'sh', '-c', 'echo via-local-proxy; exit 4'], { env });
      assert.equal(r.code, 4);
      assert.equal(r.stdout, 'via-local-proxy\n');
      r = await kubectl(cfg, ['exec', '-i', 'web', '--', 'cat'], {
        env,
        input: 'stdin through the listener\n',
      });
      assert.equal(r.stdout, 'stdin through the listener\n');
      const lock = await wctl(['lock', '--user=erin', '--message=erin is locked']);
      assert.equal(lock.code, 0, lock.stderr);
      r = await kubectl(cfg, ['get', 'pods'], { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Forbidden.*erin is locked/);
    } finally {
      proxy.child.kill('SIGTERM');
      await proxy.exited;
    }
  });

  test('wsh kube logout removes the context', async () => {
    const r = await wsh('bob', ['kube', 'logout', 'fake']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(readFileSync(kc('bob'), 'utf8'), /kube\/fake/);
  });
});
