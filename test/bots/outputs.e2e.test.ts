/**
 * Issue 17: a bot beyond SSH, with real parts — a real `warden start` (app_service with a real
 * node:http app, kube_service in front of testkit's fake API server, a test double), a real
 * PostgreSQL 15 in a temp dir that takes client certificates only (its certificate from `wctl
 * auth sign --format=db`), real psql, curl and kubectl, and the built wbot, wsh and wctl.
 *
 * With the cluster at `required-for-humans` the bot reaches the database (`wsh -i … db connect`
 * and a `wsh -i … proxy db --tunnel` with psql), the app (curl with DIR/apps/NAME.pem) and the
 * Kubernetes cluster (kubectl with DIR/kubeconfig.yaml), audited as the bot with the exemption,
 * while a person with the same role and no device is refused; the outputs, a running tunnel and
 * a running `kubectl proxy` (client-go rereads the kubeconfig's certificate file) keep working
 * past the first certificates' end (renewed with the rest); a restart without --app or
 * --kubernetes-cluster removes their outputs; under `required` the bot is refused too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  collectProcess,
  type FakeKubeApiServer,
  type HttpApp,
  inviteAndSignUp,
  kubectl,
  type PostgresServer,
  requireKubectl,
  requirePostgres,
  requireTool,
  runCli,
  setDeviceTrust,
  spawnCli,
  spawnKubectl,
  startFakeKubeWithWebPod,
  startHttpApp,
  startPostgres,
  startWarden,
  type WardenProcess,
  waitUntil,
} from '@warden/testkit';
import { curl } from '../support/curl';

const PASSWORD = 'correct horse battery staple';
const checks = [requirePostgres(), requireTool('psql'), requireTool('curl'), requireKubectl()];
const skip = checks.find((c) => c.skip)?.skip ?? false;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return collectProcess(spawn(cmd, args, { env: { ...process.env, ...env } }), { timeout: 'kill' });
}

/** Polls `check` every 100 ms; fails after `timeoutMs` with the log so far. */
const waitFor = <T>(check: () => T, timeoutMs: number, log: () => string) =>
  waitUntil(() => `it; log so far:\n${log()}`, check, timeoutMs, 100);

describe('a bot with database, app and Kubernetes outputs', { skip }, () => {
  let w: WardenProcess;
  let pg: PostgresServer;
  let app: HttpApp;
  let fake: FakeKubeApiServer;
  let port = 0;
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
  const wsh = (args: string[], env: NodeJS.ProcessEnv = w.env) => runCli('wsh', args, { env });
  const cap = (mode: string) => setDeviceTrust(w, mode);
  /** `wsh -i IDENTITY db connect orders` as the bot (db user ci): psql runs `sql`. */
  const botPsql = (identity: string, sql: string) =>
    wsh([
      '-i',
      identity,
      'db',
      'connect',
      'orders',
      '--db-user=ci',
      '--db-name=postgres',
      '--',
      '-X',
      '-At',
      '-c',
      sql,
    ]);
  /** `wsh -i IDENTITY proxy db orders --tunnel` as the bot, on the port it picks (port 0). */
  const botTunnel = async (identity: string) => {
    const tunnel = spawnCli('wsh', ['-i', identity, 'proxy', 'db', 'orders', '--tunnel', '--db-user=ci'], {
      env: w.env,
    });
    const started = /Started a tunnel for database "orders" on 127\.0\.0\.1:(\d+)/;
    const port = await waitFor(() => started.exec(tunnel.stdout())?.[1], 20_000, tunnel.stderr).catch(
      (e: unknown) => {
        tunnel.child.kill('SIGTERM');
        throw e;
      },
    );
    return { tunnel, port: Number(port) };
  };
  const psqlQuery = (tunnelPort: number, sql: string) =>
    run('psql', [
      '-X',
      '-At',
      `host=127.0.0.1 port=${tunnelPort} user=ci dbname=postgres sslmode=disable`,
      '-c',
      sql,
    ]);
  const appGet = (dest: string, path = '/headers') =>
    curl([
      '--cacert',
      join(dest, 'host-cas.pem'),
      '--cert',
      join(dest, 'apps', 'dash.pem'),
      '--resolve',
      `dash.localhost:${port}:127.0.0.1`,
      `https://dash.localhost:${port}${path}`,
    ]);
  const k = (dest: string, args: string[]) => kubectl(join(dest, 'kubeconfig.yaml'), args);

  async function join_(name: string, extra: string[] = [], flags: string[] = []): Promise<string> {
    const add = await wctl(['bots', 'add', name, '--roles=bot-all', ...extra]);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const dest = join(w.dir, `bot-${name}`);
    const r = await runCli(
      'wbot',
      [
        'start',
        `--proxy=${w.proxy}`,
        `--token=${token}`,
        `--ca-pin=${w.caPin}`,
        `--destination=${dest}`,
        '--app=dash',
        '--kubernetes-cluster=fake',
        ...flags,
        '--oneshot',
      ],
      { env: w.env },
    );
    assert.equal(r.code, 0, r.stderr);
    return dest;
  }

  before(async () => {
    app = await startHttpApp();
    fake = await startFakeKubeWithWebPod('ci-bots');
    w = await startWarden({
      publicHost: 'localhost',
      configYaml:
        'auth_service:\n  authentication:\n    second_factor: "off"\n' +
        `app_service:\n  apps:\n    - name: dash\n      uri: ${app.url}\n      labels: { env: prod }\n` +
        fake.kubeServiceYaml('env: prod'),
    });
    port = Number(w.proxy.split(':')[1]);
    await cap('required-for-humans');
    // The database: a server certificate from the db CA, client certificates only.
    const prefix = join(w.dir, 'pg');
    const signed = await wctl([
      'auth',
      'sign',
      '--format=db',
      '--host=localhost,127.0.0.1',
      `--out=${prefix}`,
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    pg = await startPostgres({
      tls: {
        cert: readFileSync(`${prefix}.crt`, 'utf8'),
        key: readFileSync(`${prefix}.key`, 'utf8'),
        ca: readFileSync(`${prefix}.cas`, 'utf8'),
      },
      hba: ['hostssl all all 127.0.0.1/32 cert'],
    });
    pg.psql('CREATE ROLE ci LOGIN; CREATE ROLE alice LOGIN');
    const files: [string, string][] = [
      [
        'db.yaml',
        `kind: db\nversion: v3\nmetadata:\n  name: orders\n  labels: { env: prod }\nspec:\n  protocol: postgres\n  uri: "127.0.0.1:${pg.port}"\n`,
      ],
      [
        'bot-all.yaml',
        'kind: role\nversion: v7\nmetadata: { name: bot-all }\nspec:\n' +
          '  options: { device_trust_mode: required-for-humans }\n' +
          '  allow:\n    db_labels: { env: prod }\n    db_users: [ci, alice]\n    db_names: [postgres]\n' +
          '    app_labels: { env: prod }\n' +
          '    kubernetes_labels: { env: prod }\n    kubernetes_groups: [ci-bots]\n' +
          '    kubernetes_resources: [{ kind: "*", namespace: "*", name: "*", verbs: ["*"] }]\n',
      ],
    ];
    for (const [name, text] of files) {
      writeFileSync(join(w.dir, name), text);
      const created = await wctl(['create', join(w.dir, name)]);
      assert.equal(created.code, 0, created.stderr);
    }
  });

  after(async () => {
    await w?.stop();
    await pg?.stop();
    await app?.close();
    await fake?.close();
  });

  test('under required-for-humans the bot uses the database, the app and the cluster; a person without a device is refused', async () => {
    const dest = await join_('ci');
    assert.equal(statSync(join(dest, 'apps', 'dash.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dest, 'kubeconfig.yaml')).mode & 0o777, 0o600);
    const identity = join(dest, 'identity');

    // The database: wsh db connect runs psql; a tunnel serves psql too.
    const connect = await botPsql(identity, 'select current_user');
    assert.equal(connect.code, 0, connect.stderr);
    assert.equal(connect.stdout.trim(), 'ci');
    const { tunnel, port: tunnelPort } = await botTunnel(identity);
    try {
      const q = await psqlQuery(tunnelPort, 'select current_user, 40 + 2');
      assert.equal(q.code, 0, q.stderr);
      assert.equal(q.stdout.trim(), 'ci|42');
    } finally {
      tunnel.child.kill('SIGTERM');
      await tunnel.exited;
    }

    // The app, with the one-file certificate and key.
    const got = await appGet(dest);
    assert.equal(got.status, 200, `${got.body}${got.stderr}`);
    const jwt = (JSON.parse(got.body) as { headers: Record<string, string> }).headers[
      'warden-jwt-assertion'
    ]!;
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: string };
    assert.equal(claims.sub, 'ci');

    // The cluster, with the written kubeconfig (static credentials: no wsh involved).
    const pods = await k(dest, ['get', 'pods', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.equal(pods.stdout.trim(), 'pod/web');
    assert.ok(
      fake.requests.some((r) => r.impersonateUser === 'ci' && r.impersonateGroups.includes('ci-bots')),
    );
    const kc = readFileSync(join(dest, 'kubeconfig.yaml'), 'utf8');
    assert.match(kc, /current-context: \S+-fake/);
    assert.doesNotMatch(kc, /exec:|client-(certificate|key)-data/);
    // Paths, not inline data: client-go rereads them (the renewal test below uses that).
    const pem = join(dest, 'kube', 'fake.pem');
    assert.ok(kc.includes(`client-certificate: ${pem}`) && kc.includes(`client-key: ${pem}`), kc);
    assert.equal(statSync(pem).mode & 0o777, 0o600);
    assert.equal(statSync(join(dest, 'kube')).mode & 0o777, 0o700);

    // Audit: the bot, and that the exemption let it in.
    const starts = JSON.parse(
      (await wctl(['audit', 'search', '--type=session.start', '--user=ci', '--format=json'])).stdout,
    ) as { protocol?: string; user_kind?: string; device_exemption?: string }[];
    const dbStarts = starts.filter((e) => e.protocol === 'db');
    assert.ok(dbStarts.length >= 2, JSON.stringify(starts));
    assert.ok(dbStarts.every((e) => e.user_kind === 'bot' && e.device_exemption === 'bot'));
    const search = async (type: string) =>
      JSON.parse(
        (await wctl(['audit', 'search', `--type=${type}`, '--user=ci', '--format=json'])).stdout,
      ) as {
        protocol?: string;
        user_kind?: string;
        device_exemption?: string;
        success: boolean;
      }[];
    for (const type of ['app.session.start', 'kube.request']) {
      const ev = await search(type);
      assert.ok(
        ev.length > 0 && ev.every((e) => e.user_kind === 'bot' && e.success),
        `${type}: ${JSON.stringify(ev)}`,
      );
    }
    // The access decisions of the app and the cluster say the bot exemption let it in.
    const appStarts = await search('app.session.start');
    assert.ok(
      appStarts.every((e) => e.device_exemption === 'bot'),
      `app.session.start: ${JSON.stringify(appStarts)}`,
    );
    const kubeAllowed = (await search('access.allowed')).filter((e) => e.protocol === 'kube');
    assert.ok(
      kubeAllowed.length > 0 &&
        kubeAllowed.every((e) => e.user_kind === 'bot' && e.device_exemption === 'bot'),
      `kube access.allowed: ${JSON.stringify(kubeAllowed)}`,
    );

    // A person with the same role and no device: refused for all three.
    const env = { ...w.env, WARDEN_HOME: join(w.dir, 'home-alice'), KUBECONFIG: join(w.dir, 'kube-alice') };
    await inviteAndSignUp(w, 'alice', { roles: 'bot-all', logins: 'nobody', password: PASSWORD, env });
    const person = await wsh(
      [
        'db',
        'connect',
        'orders',
        '--db-user=alice',
        '--db-name=postgres',
        '--',
        '-X',
        '-At',
        '-c',
        'select 1',
      ],
      env,
    );
    assert.notEqual(person.code, 0, person.stdout);
    assert.match(person.stderr, /unauthorized device/);
    const appLogin = await wsh(['app', 'login', 'dash'], env);
    assert.equal(appLogin.code, 0, appLogin.stderr);
    assert.match(appLogin.stderr, /requires a trusted device/);
    const kl = await wsh(['kube', 'login', 'fake'], env);
    assert.equal(kl.code, 0, kl.stderr);
    const personPods = await kubectl(env.KUBECONFIG, ['get', 'pods'], { env });
    assert.equal(personPods.code, 1);
    assert.match(personPods.stderr, /Forbidden\): unauthorized device/);
  });

  test('outputs, a running tunnel and a running kubectl proxy outlive the first certificates: renewed with the rest', async () => {
    const add = await wctl(['bots', 'add', 'short', '--roles=bot-all', '--ttl=12s']);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const dest = join(w.dir, 'bot-short');
    const daemon = spawnCli(
      'wbot',
      [
        'start',
        `--proxy=${w.proxy}`,
        `--ca-pin=${w.caPin}`,
        `--destination=${dest}`,
        '--app=dash',
        '--kubernetes-cluster=fake',
      ],
      { env: { ...w.env, WARDEN_BOT_TOKEN: token } },
    );
    const log = () => daemon.stderr();
    let tunnel: ReturnType<typeof spawnCli> | undefined;
    let kproxy: ReturnType<typeof spawnKubectl> | undefined;
    try {
      await waitFor(() => /wrote .*kubeconfig\.yaml/.test(log()), 20_000, log);
      const firstExpiry = /valid until (\S+)/.exec(log())![1]!;
      const firstKube = readFileSync(join(dest, 'kube', 'fake.pem'), 'utf8');
      // A long-running client-go program: kubectl proxy loads the kubeconfig once.
      kproxy = spawnKubectl(join(dest, 'kubeconfig.yaml'), ['proxy', '--port=0']);
      const kport = Number((await kproxy.waitFor(/Starting to serve on 127\.0\.0\.1:(\d+)/))[1]);
      const viaProxy = async () => {
        const r = await fetch(`http://127.0.0.1:${kport}/api/v1/namespaces/default/pods`);
        return { status: r.status, body: await r.text() };
      };
      const before = await viaProxy();
      assert.equal(before.status, 200, before.body);
      assert.match(before.body, /"web"/);
      const started = await botTunnel(join(dest, 'identity'));
      tunnel = started.tunnel;
      const tunnelPort = started.port;
      const early = await psqlQuery(tunnelPort, 'select 1');
      assert.equal(early.code, 0, early.stderr);
      // A renewal writes the outputs again; then wait past the first certificates' end.
      await waitFor(() => /renewed bot "short"[\s\S]*wrote .*kubeconfig\.yaml/.test(log()), 30_000, log);
      const wait = Date.parse(firstExpiry) + 500 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      assert.notEqual(readFileSync(join(dest, 'kube', 'fake.pem'), 'utf8'), firstKube);
      // The same kubectl proxy, past the first kube certificate's end: it uses the renewed one
      // (inline data would still hold the first, answered 401 "expired"). client-go notices a
      // replaced file at a new connection's handshake and then closes all its connections —
      // that one too (client-go transport/cert_rotation.go: CloseAll in loadClientCert; its
      // five-minute check usually notices first, long before a 20-minute-old certificate
      // ends): so one request may fail with "use of closed network connection", never more.
      let renewedProxy = await viaProxy();
      if (renewedProxy.status !== 200 && /use of closed network connection/.test(renewedProxy.body))
        renewedProxy = await viaProxy();
      assert.equal(renewedProxy.status, 200, `${renewedProxy.body}\n${kproxy.output()}\n${log()}`);
      assert.match(renewedProxy.body, /"web"/);

      const late = await psqlQuery(tunnelPort, 'select 2');
      assert.equal(late.code, 0, `${late.stderr}\n${tunnel.stderr()}\n${log()}`);
      assert.equal(late.stdout.trim(), '2');
      const got = await appGet(dest, '/hello');
      assert.equal(got.status, 200, `${got.body}${got.stderr}\n${log()}`);
      assert.equal(got.body, 'hello');
      const pods = await k(dest, ['get', 'pods', '-o', 'name']);
      assert.equal(pods.code, 0, `${pods.stderr}\n${log()}`);
    } finally {
      kproxy?.kill();
      await kproxy?.exited;
      tunnel?.child.kill('SIGTERM');
      await tunnel?.exited;
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
  });

  test('bad outputs: a malformed name is refused before the token is spent; an unknown app fails --oneshot, and a restart without a token fixes it', async () => {
    const add = await wctl(['bots', 'add', 'typo', '--roles=bot-all']);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const dest = join(w.dir, 'bot-typo');
    const start = (flags: string[]) =>
      runCli('wbot', ['start', `--destination=${dest}`, '--oneshot', ...flags], { env: w.env });
    const first = [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`];
    const malformed = await start([...first, '--app=Not_An_App']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /--app "Not_An_App" is not an app name/);
    const badCluster = await start([...first, '--kubernetes-cluster=no such']);
    assert.equal(badCluster.code, 1);
    assert.match(badCluster.stderr, /--kubernetes-cluster "no such" is not a cluster name/);
    // The token is still good: it joins, then the unknown app fails the oneshot.
    const unknown = await start([...first, '--app=nope']);
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.match(unknown.stderr, /joined as bot "typo"/);
    assert.match(unknown.stderr, /app "nope" not found/);
    assert.match(unknown.stderr, /start again without a token/);
    assert.equal(existsSync(join(dest, 'apps', 'nope.pem')), false);
    const fixed = await start(['--app=dash']);
    assert.equal(fixed.code, 0, fixed.stderr);
    const got = await appGet(dest, '/hello');
    assert.equal(got.status, 200, `${got.body}${got.stderr}`);
  });

  test('a restart without --app or --kubernetes-cluster removes their outputs; one with them writes them again', async () => {
    const dest = await join_('pruned');
    const outputs = () =>
      [
        ...readdirSync(join(dest, 'apps')).map((f) => `apps/${f}`),
        ...readdirSync(join(dest, 'kube')).map((f) => `kube/${f}`),
        ...(existsSync(join(dest, 'kubeconfig.yaml')) ? ['kubeconfig.yaml'] : []),
      ].sort();
    assert.deepEqual(outputs(), [
      'apps/dash.crt',
      'apps/dash.json',
      'apps/dash.pem',
      'kube/fake.pem',
      'kubeconfig.yaml',
    ]);
    const start = (flags: string[]) =>
      runCli('wbot', ['start', `--destination=${dest}`, '--oneshot', ...flags], { env: w.env });
    // Only the cluster now: the app's files go, the cluster's stay (renewed).
    const kubeOnly = await start(['--kubernetes-cluster=fake']);
    assert.equal(kubeOnly.code, 0, kubeOnly.stderr);
    assert.match(kubeOnly.stderr, /removed .*apps\/dash\.pem.* \(no longer asked for\)/);
    assert.deepEqual(outputs(), ['kube/fake.pem', 'kubeconfig.yaml']);
    const pods = await k(dest, ['get', 'pods', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    // Nothing asked for: no outputs at all, the identity stays.
    const none = await start([]);
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(outputs(), []);
    assert.ok(existsSync(join(dest, 'identity')));
    const noApp = await appGet(dest);
    assert.notEqual(noApp.status, 200, 'no app certificate is left to use');
    // Asked for again: written again.
    const again = await start(['--app=dash']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(outputs(), ['apps/dash.crt', 'apps/dash.json', 'apps/dash.pem']);
    const got = await appGet(dest, '/hello');
    assert.equal(got.status, 200, `${got.body}${got.stderr}`);
  });

  test('under required, the bot is refused by the database and the cluster', async () => {
    const dest = await join_('strict');
    await cap('required');
    try {
      const db = await botPsql(join(dest, 'identity'), 'select 1');
      assert.notEqual(db.code, 0, db.stdout);
      assert.match(db.stderr, /unauthorized device/);
      const pods = await k(dest, ['get', 'pods']);
      assert.equal(pods.code, 1);
      assert.match(pods.stderr, /Forbidden\): unauthorized device/);
    } finally {
      await cap('required-for-humans');
    }
  });
});
