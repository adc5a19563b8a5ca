/**
 * The fake Kubernetes API server (testkit's test double) driven by the real `kubectl`, with a
 * kubeconfig pointing straight at it: if kubectl can't use it, nothing built on it means anything.
 * Discovery, get/describe (Table), apply (client- and server-side), delete, get -w, logs -f,
 * exec (exit codes, stdin, -it with resize through a PTY), port-forward (WebSocket-tunnelled
 * SPDY), auth can-i / whoami with impersonation, and refusals (no credential, no rule).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type FakeKubeApiServer,
  kubectl,
  requireKubectl,
  spawnKubectl,
  startFakeKubeApiServer,
} from '@warden/testkit';

const tool = requireKubectl();

const LOOP = 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done';

describe('fake Kubernetes API server with real kubectl', { skip: tool.skip }, () => {
  let s: FakeKubeApiServer;
  let dir: string;
  let kc: string;
  let echo: Server;
  let echoPort: number;
  const k = (args: string[], input?: string) => kubectl(kc, args, { input });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kube-fake-test-'));
    s = await startFakeKubeApiServer({
      rules: [
        {
          groups: ['viewers'],
          verbs: ['get', 'list', 'watch'],
          resources: ['pods'],
          namespaces: ['default'],
        },
      ],
    });
    kc = s.writeKubeconfig(join(dir, 'admin.kubeconfig'));
    s.create('pods', {
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: { containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', LOOP] }] },
    });
    echo = createServer((c) => c.on('data', (b) => c.write(Buffer.concat([Buffer.from('echo:'), b]))));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
  });
  after(async () => {
    echo?.close();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('discovery: api-resources lists the served kinds (aggregated discovery v2 asked for and answered)', async () => {
    const r = await k(['api-resources']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pods\s+po\s+v1\s+true\s+Pod$/m);
    assert.match(r.stdout, /^configmaps\s+cm\s+v1\s+true\s+ConfigMap$/m);
    assert.match(r.stdout, /selfsubjectaccessreviews\s+authorization\.k8s\.io\/v1\s+false/);
    const disc = s.requests.find((q) => q.path === '/api');
    assert.ok(disc, 'kubectl asked for /api');
  });

  test('get (Table) and describe', async () => {
    const r = await k(['get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/m);
    assert.match(r.stdout, /^web\s+1\/1\s+Running\s+0\s+\d+s$/m);
    const wide = await k(['get', 'pods', '-o', 'wide', '-l', 'app=web']);
    assert.match(wide.stdout, /web\s+1\/1\s+Running.*127\.0\.0\.1\s+fake-node/);
    const none = await k(['get', 'pods', '-l', 'app=other']);
    assert.match(none.stderr, /No resources found in default namespace/);
    const d = await k(['describe', 'pod', 'web']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^Name:\s+web$/m);
    assert.match(d.stdout, /Labels:\s+app=web/);
    assert.match(d.stdout, /Status:\s+Running/);
    const missing = await k(['get', 'pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);
  });

  test('apply: client-side create then update, server-side create and update, delete', async () => {
    const cm = (v: string) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: "${v}"\n`;
    let r = await k(['apply', '-f', '-'], cm('1'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configmap\/settings created/);
    r = await k(['apply', '-f', '-'], cm('2'));
    assert.match(r.stdout, /configmap\/settings configured/);
    assert.equal(s.get('configmaps', 'settings')?.data.a, '2');
    assert.match(
      s.get('configmaps', 'settings')?.metadata.annotations[
        'kubectl.kubernetes.io/last-applied-configuration'
      ],
      /"a":"2"/,
    );
    r = await k(['apply', '--server-side', '-f', '-'], cm('3').replace('settings', 'ssa'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configmap\/ssa serverside-applied/);
    r = await k(['apply', '--server-side', '-f', '-'], cm('4').replace('settings', 'ssa'));
    assert.equal(s.get('configmaps', 'ssa')?.data.a, '4');
    const ssaReq = s.requests.find((q) => q.method === 'PATCH' && q.name === 'ssa');
    assert.match(ssaReq?.query ?? '', /fieldManager=kubectl/);
    r = await k(['delete', 'configmap', 'ssa']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configmap "ssa" deleted/);
    assert.equal(s.get('configmaps', 'ssa'), undefined);
    r = await k(['create', 'configmap', 'lit', '--from-literal=k=v']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(s.get('configmaps', 'lit')?.data, { k: 'v' });
  });

  test('get -w streams additions and deletions', async () => {
    const w = spawnKubectl(kc, ['get', 'configmaps', '-w']);
    try {
      await w.waitFor(/^NAME\s+DATA\s+AGE/m);
      await k(['create', 'configmap', 'watched', '--from-literal=x=y']);
      await w.waitFor(/^watched\s+1\s+/m);
      await k(['delete', 'configmap', 'watched']);
      await w.waitFor(/^watched\s+1\s+.*\n(.*\n)*watched\s+1\s+/m);
    } finally {
      w.kill();
    }
  });

  test('logs and logs -f', async () => {
    const r = await k(['logs', 'web', '--tail=1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^line \d+\n$/);
    const f = spawnKubectl(kc, ['logs', '-f', 'web']);
    try {
      const m = await f.waitFor(/line (\d+)\n/);
      const n = Number(m[1]);
      await f.waitFor(new RegExp(`line ${n + 3}\\n`));
    } finally {
      f.kill();
    }
  });

  test('exec: output, stderr, stdin and exit codes pass through', async () => {
    let r = await k(['exec', 'web', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /^err\n/);
    r = await k(['exec', '-i', 'web', '--', 'cat'], 'from stdin\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from stdin\n');
    r = await k(['exec', 'web', '--', 'no-such-command-here']);
    assert.notEqual(r.code, 0);
    const rec = s.execs.find((e) => e.command[0] === 'sh');
    assert.equal(rec?.exitCode, 3);
  });

  test('exec -it: a PTY, resize on channel 4, exit code', async () => {
    const pty = await import('node-pty');
    const term = pty.spawn(
      'kubectl',
      ['exec', '-it', 'web', '--', 'sh', '-c', 'stty size; read x; stty size; echo got $x; exit 7'],
      {
        cols: 100,
        rows: 30,
        env: { ...process.env, KUBECONFIG: kc } as Record<string, string>,
      },
    );
    let out = '';
    const wait = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timeout waiting for ${re}: ${JSON.stringify(out)}`)),
          15_000,
        );
        const check = () => {
          if (re.test(out)) {
            clearTimeout(t);
            resolve();
          } else setTimeout(check, 20);
        };
        check();
      });
    term.onData((d) => {
      out += d;
    });
    const exit = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    await wait(/30 100/);
    term.resize(120, 40);
    const rec = () => s.execs.find((e) => e.tty);
    // the resize reaches the fake (channel 4) before we answer `read`
    while (!rec()?.resizes.some((z) => z.width === 120)) await new Promise((r) => setTimeout(r, 10));
    term.write('hello\r');
    await wait(/got hello/);
    assert.equal(await exit, 7);
    assert.match(out, /40 120/);
    assert.ok(rec()?.resizes.some((z) => z.width === 120 && z.height === 40));
  });

  test('port-forward tunnels TCP to the pod port over WebSocket SPDY', async () => {
    const pf = spawnKubectl(kc, ['port-forward', 'pod/web', `:${echoPort}`]);
    try {
      const m = await pf.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/);
      for (const word of ['ping', 'pong']) {
        const got = await new Promise<string>((resolve, reject) => {
          const c = netConnect(Number(m[1]), '127.0.0.1', () => c.write(word));
          c.on('data', (b) => {
            resolve(b.toString());
            c.end();
          });
          c.on('error', reject);
        });
        assert.equal(got, `echo:${word}`);
      }
      assert.ok(s.requests.some((q) => q.subresource === 'portforward' && q.status === 101));
      assert.equal(s.portForwards.at(-1)?.port, echoPort);
    } finally {
      pf.kill();
    }
  });

  test('auth can-i and whoami answer for the impersonated user; impersonation headers are recorded', async () => {
    let r = await k(['auth', 'can-i', 'list', 'pods']);
    assert.equal(r.stdout.trim(), 'yes');
    r = await k(['auth', 'can-i', 'list', 'pods', '--as=alice', '--as-group=viewers']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'yes');
    r = await k(['auth', 'can-i', 'delete', 'pods', '--as=alice', '--as-group=viewers']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^no/);
    const last = s.requests.filter((q) => q.resource === 'selfsubjectaccessreviews').at(-1);
    assert.equal(last?.impersonateUser, 'alice');
    assert.deepEqual(last?.impersonateGroups, ['viewers']);
    r = await k(['auth', 'whoami', '--as=bob', '--as-group=viewers', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).status.userInfo.username, 'bob');
    r = await k(['get', 'pods', '--as=alice', '--as-group=viewers', '-n', 'kube-system']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Error from server \(Forbidden\): pods is forbidden: User "alice" cannot list resource "pods"/,
    );
  });

  test('refusals: no credential (401), a user without rules (403), impersonation by a non-admin (403), a token', async () => {
    const anon = join(dir, 'anon.kubeconfig');
    s.writeKubeconfig(anon, { token: 'not-a-token' });
    let r = await kubectl(anon, ['get', 'pods']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Unauthorized|must be logged in/);
    const carol = join(dir, 'carol.kubeconfig');
    s.writeKubeconfig(carol, { cert: s.clientCert('carol', ['nobody']) });
    r = await kubectl(carol, ['get', 'pods']);
    assert.match(r.stderr, /pods is forbidden: User "carol" cannot list resource "pods"/);
    r = await kubectl(carol, ['get', 'pods', '--as=admin']);
    assert.match(r.stderr, /User "carol" cannot impersonate resource "users"/);
    const tok = join(dir, 'token.kubeconfig');
    s.writeKubeconfig(tok, { token: s.adminToken });
    r = await kubectl(tok, ['get', 'pods', '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'pod/web\n');
  });
});
