/**
 * High availability as a user meets it (issue 7): three real `warden start` processes, each
 * with its own data dir, proxy port and SSH node, sharing one PostgreSQL (`storage: {type:
 * postgres}`, the password from an environment variable), started at once (the schema
 * migration must not race). Users created through replica A log in through B and C; `wsh ssh`
 * through B reaches both A's node and B's; a lock created through A ends the session held
 * through B; PostgreSQL restarted under A and B → they reconnect and serve; C killed with
 * SIGKILL (first, so its 60 s heartbeat TTL runs out while the rest runs) → the others keep
 * serving and C's node leaves `wsh ls`. Device trust across replicas: `device.e2e.test.ts`.
 *
 * Each TOTP login uses a user whose authenticator has a fresh step, so no test waits for the
 * next 30-second step.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Authenticator,
  inviteAndSignUp,
  type PostgresServer,
  requirePostgres,
  runCli,
  spawnCli,
  startPostgres,
  startWarden,
  type WardenProcess,
  waitUntil,
  wardenStorage,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const DB_PASSWORD = 'db-secret-5e1f0c';
const check = requirePostgres();

/** Polls `cond` every 200 ms until it holds; fails after `limitMs` with `what`. */
const waitFor = (what: string, cond: () => Promise<boolean>, limitMs: number) =>
  waitUntil(what, cond, limitMs, 200);

describe('three replicas on one PostgreSQL', { skip: check.skip }, () => {
  let pg: PostgresServer;
  let a: WardenProcess;
  let b: WardenProcess;
  let c: WardenProcess;
  const otp = new Map<string, Authenticator>();
  const home = (user: string) => join(a.dir, `home-${user}`);
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: { WARDEN_HOME: home(user) }, input });
  /** wctl with a replica's admin identity (its data dir). */
  const wctl = (w: WardenProcess, args: string[]) =>
    runCli('wctl', args, { env: { WARDEN_DATA_DIR: w.dataDir, WARDEN_HOME: join(w.dir, 'home-admin') } });
  const login = async (user: string, w: WardenProcess) => {
    const code = await otp.get(user)!.code();
    return wsh(
      user,
      ['login', `--proxy=${w.proxy}`, `--user=${user}`, `--ca-pin=${w.caPin}`],
      `${PASSWORD}\n${code}\n`,
    );
  };
  const nodes = async (user: string) => {
    const res = await wsh(user, ['ls', '--format=json']);
    assert.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { spec: { hostname: string } }[]).map((n) => n.spec.hostname).sort();
  };

  let storage: string;
  let env: Record<string, string>;

  before(async () => {
    pg = await startPostgres({ password: DB_PASSWORD });
    ({ yaml: storage, env } = wardenStorage(pg, DB_PASSWORD, 'ha', { poolSize: 4 }));
    const replica = (nodeName: string) => startWarden({ nodeName, configYaml: storage, env });
    [a, b, c] = await Promise.all([replica('node-a'), replica('node-b'), replica('node-c')]);
    // Users created through A, each signed up once (its authenticator's first step used).
    await Promise.all(
      ['alice', 'bob', 'carol', 'dave'].map(async (user) => {
        const s = await inviteAndSignUp(a, user, {
          roles: 'access',
          logins: 'root',
          password: PASSWORD,
          env: { WARDEN_HOME: home(user) },
        });
        const auth = new Authenticator(s.uri!);
        auth.markUsed();
        otp.set(user, auth);
      }),
    );
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
    await pg?.stop();
  });

  test('the replicas form one cluster: same CAs, the backend named without its password', () => {
    assert.equal(a.caPin, b.caPin);
    assert.equal(a.caPin, c.caPin);
    for (const w of [a, b, c]) {
      assert.match(w.output(), new RegExp(`Backend: PostgreSQL warden@127\\.0\\.0\\.1:${pg.port}/postgres`));
    }
  });

  test('a replica that cannot start exits with one error (regression: its PostgreSQL connections kept it running)', async () => {
    const file = join(a.dir, 'taken.yaml');
    writeFileSync(
      file,
      `version: v1\ndata_dir: ${join(a.dir, 'taken')}\nproxy_service:\n  listen_addr: ${a.proxy}\nssh_service:\n  enabled: false\n${storage}`,
    );
    const res = await runCli('warden', ['start', '--config', file], { env, timeoutMs: 20_000 });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^ERROR: proxy_service\.listen_addr .* is already in use/m);
  });

  test('C serves a user created through A, then is killed with SIGKILL', async () => {
    const res = await login('carol', c);
    assert.equal(res.code, 0, res.stderr);
    const ssh = await wsh('carol', ['ssh', 'root@node-c', 'echo', 'via-c']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout, 'via-c\n');
    const killed = new Promise((r) => c.child.once('exit', r));
    c.child.kill('SIGKILL');
    await killed;
  });

  test('a user created through A logs in through B', async () => {
    for (const user of ['alice', 'bob']) {
      const res = await login(user, b);
      assert.equal(res.code, 0, res.stderr);
    }
    const listed = await nodes('bob');
    assert.ok(listed.includes('node-a') && listed.includes('node-b'), listed.join());
  });

  test('wsh ssh through B reaches B’s node and A’s', async () => {
    for (const node of ['node-b', 'node-a']) {
      const res = await wsh('bob', ['ssh', `root@${node}`, 'echo', `via-b-to-${node}`]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, `via-b-to-${node}\n`);
    }
  });

  test('a lock created through A ends the session held through B', async (t) => {
    const session = spawnCli('wsh', ['ssh', '-t', 'root@node-b', 'echo ready; sleep 60'], {
      env: { WARDEN_HOME: home('alice') },
    });
    await waitFor('the session to start', async () => session.stdout().includes('ready'), 20_000);
    const lockedAt = performance.now();
    const lock = await wctl(a, ['lock', '--user=alice', '--message=incident 7', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const code = await Promise.race([
      session.exited,
      new Promise<string>((r) => setTimeout(() => r('still running'), 10_000)),
    ]);
    assert.notEqual(code, 'still running', 'the lock ended the session');
    t.diagnostic(`session ended ${Math.round(performance.now() - lockedAt)} ms after wctl lock started`);
    assert.match(session.stdout() + session.stderr(), /lock targeting User:"alice" is in force: incident 7/);
    const again = await wsh('alice', ['ssh', 'root@node-a', 'true']);
    assert.equal(again.code, 255);
    assert.match(again.stderr, /lock targeting User:"alice" is in force: incident 7/);
  });

  test('PostgreSQL restarted under A and B: they reconnect and serve', async () => {
    await pg.restart();
    // A login through A (password, TOTP step stored with compare-and-swap), ssh through B.
    await waitFor('a login through A', async () => (await login('dave', a)).code === 0, 30_000);
    const res = await wsh('bob', ['ssh', 'root@node-b', 'echo', 'after-restart']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'after-restart\n');
  });

  test('C’s node leaves wsh ls when its heartbeat TTL runs out; A and B still serve', async () => {
    // TTL 60 s from C's last beat (one every 20 s).
    await waitFor('node-c to expire', async () => (await nodes('dave')).join() === 'node-a,node-b', 75_000);
    const ssh = await wsh('dave', ['ssh', 'root@node-a', 'echo', 'still-here']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout, 'still-here\n');
    for (const w of [a, b, c]) assert.doesNotMatch(w.output(), new RegExp(DB_PASSWORD));
  });
});
