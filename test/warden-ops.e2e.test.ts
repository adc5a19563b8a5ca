/**
 * The daemon's operational side (issue 16): `warden configure --check` reporting every
 * problem at once, a port conflict that fails `warden start` before anything is written,
 * the diagnostics listener (/metrics, /healthz, /readyz) counting what real clients do, JSON
 * logs with ISO times and level names, and `warden start --debug`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  Authenticator,
  captureOutput,
  freePort,
  inviteAndSignUp,
  runCli,
  startWarden,
  type WardenProcess,
  waitForText,
} from '@warden/testkit';

const root = resolve(import.meta.dirname, '..');
const PASSWORD = 'correct horse battery staple';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'warden-ops-'));
}

test('warden configure --check reports every problem at once with "did you mean"; a good file is OK', async () => {
  const dir = tempDir();
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'version: v1\nlog:\n  sevrity: debug\nauth_service:\n  authentication:\n    second_factor: otpp\nproxy_servce:\n  listen_addr: 127.0.0.1:3080\n',
    );
    const res = await runCli('warden', ['configure', '--check', bad]);
    assert.equal(res.code, 1);
    const lines = res.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      `ERROR: ${bad}: log.sevrity: unknown field; did you mean severity? (line 3)`,
      `ERROR: ${bad}: auth_service.authentication.second_factor: expected one of on, otp, off; did you mean otp? (line 6)`,
      `ERROR: ${bad}: proxy_servce: unknown field; did you mean proxy_service? (line 7)`,
      `3 problems in ${bad}`,
    ]);
    const json = JSON.parse((await runCli('warden', ['configure', '--check', bad, '--format=json'])).stdout);
    assert.equal(json.ok, false);
    assert.equal(json.problems.length, 3);
    // warden start says all of them too, and writes nothing.
    const data = join(dir, 'data');
    writeFileSync(bad, `version: v1\ndata_dir: ${data}\nlog:\n  sevrity: debug\nstorage:\n  type: sqlit\n`);
    const startRes = await runCli('warden', ['start', '--config', bad]);
    assert.equal(startRes.code, 1);
    assert.equal(startRes.stderr.trim().split('\n').length, 2, startRes.stderr);
    assert.match(startRes.stderr, /log\.sevrity: unknown field; did you mean severity\?/);
    assert.match(startRes.stderr, /storage\.type: .*did you mean sqlite\?/);
    assert.equal(existsSync(data), false);

    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'version: v1\ndiag_addr: 127.0.0.1:3000\nlog: { format: json }\n');
    const ok = await runCli('warden', ['configure', '--check', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${good}: OK\n`);
    const missing = await runCli('warden', ['configure']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /warden configure --check FILE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port already in use fails warden start before it creates a cluster in the data dir', async () => {
  const dir = tempDir();
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (taken.address() as { port: number }).port;
    const data = join(dir, 'data');
    for (const [field, yaml] of [
      ['proxy_service.listen_addr', `proxy_service:\n  listen_addr: 127.0.0.1:${port}\n`],
      [
        'ssh_service.listen_addr',
        `proxy_service:\n  listen_addr: 127.0.0.1:${await freePort()}\nssh_service:\n  listen_addr: 127.0.0.1:${port}\n`,
      ],
      [
        'diag_addr',
        `diag_addr: 127.0.0.1:${port}\nproxy_service:\n  listen_addr: 127.0.0.1:${await freePort()}\nssh_service:\n  listen_addr: 127.0.0.1:${await freePort()}\n`,
      ],
    ] as const) {
      const file = join(dir, 'warden.yaml');
      writeFileSync(file, `version: v1\ndata_dir: ${data}\n${yaml}`);
      const res = await runCli('warden', ['start', '--config', file]);
      assert.equal(res.code, 1, field);
      assert.equal(
        res.stderr,
        `ERROR: ${field} 127.0.0.1:${port} is already in use (is another warden running?)\n`,
      );
      assert.equal(existsSync(data), false, `${field}: no data dir, no cluster`);
    }
  } finally {
    taken.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the diagnostics listener', () => {
  let w: WardenProcess;
  let diag: string;
  const metric = async (pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`${diag}/metrics`)).text();
    const m = pattern.exec(text);
    return m ? Number(m[1]) : 0;
  };

  before(async () => {
    const port = await freePort();
    diag = `http://127.0.0.1:${port}`;
    w = await startWarden({ configYaml: `diag_addr: 127.0.0.1:${port}\nlog:\n  format: json\n` });
  });
  after(async () => {
    await w?.stop();
  });

  test('is announced, and /healthz and /readyz answer for a started warden', async () => {
    assert.match(w.output(), new RegExp(`Diagnostics on ${diag.replace(/\./g, '\\.')} \\(/metrics`));
    const health = await fetch(`${diag}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${diag}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, checks: { backend: 'ok', lock_view: 'ok' } });
  });

  test('/metrics counts logins, ceremonies, sessions, access decisions, backend/audit latency and lock lag', async () => {
    const res = await fetch(`${diag}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const failedBefore = await metric(/^warden_logins_total\{outcome="failure"\} (\d+)/m);
    const signupsBefore = await metric(
      /^warden_ceremonies_total\{ceremony="signup",outcome="success"\} (\d+)/m,
    );

    const home = join(w.dir, 'home-alice');
    const s = await inviteAndSignUp(w, 'alice', {
      roles: 'access',
      logins: 'root',
      password: PASSWORD,
      env: { ...w.env, WARDEN_HOME: home },
    });
    const otp = new Authenticator(s.uri!);
    otp.markUsed();
    const wrong = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
      env: { ...w.env, WARDEN_HOME: home },
      input: 'not the password\n000000\n',
    });
    assert.equal(wrong.code, 1);
    const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
      env: { ...w.env, WARDEN_HOME: home },
      input: `${PASSWORD}\n${await otp.code()}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    const ssh = await runCli('wsh', ['ssh', 'root@node-1', 'true'], { env: { ...w.env, WARDEN_HOME: home } });
    assert.equal(ssh.code, 0, ssh.stderr);
    const lock = await runCli('wctl', ['lock', '--user=nobody', '--ttl=1h'], { env: w.env });
    assert.equal(lock.code, 0, lock.stderr);

    assert.equal(await metric(/^warden_logins_total\{outcome="failure"\} (\d+)/m), failedBefore + 1);
    assert.ok((await metric(/^warden_logins_total\{outcome="success"\} (\d+)/m)) >= 1);
    assert.equal(
      await metric(/^warden_ceremonies_total\{ceremony="signup",outcome="success"\} (\d+)/m),
      signupsBefore + 1,
    );
    assert.ok((await metric(/^warden_sessions_total\{protocol="ssh"\} (\d+)/m)) >= 1);
    assert.ok(
      (await metric(/^warden_access_decisions_total\{protocol="ssh",outcome="allowed"\} (\d+)/m)) >= 1,
    );
    assert.ok((await metric(/^warden_backend_request_duration_seconds_count\{op="get"\} (\d+)/m)) > 0);
    assert.ok((await metric(/^warden_audit_emit_duration_seconds_count (\d+)/m)) > 0);
    // The lock reached this process's lock view: one lag observation.
    for (let i = 0; i < 100 && (await metric(/^warden_lock_enforcement_lag_seconds_count (\d+)/m)) < 1; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(await metric(/^warden_lock_enforcement_lag_seconds_count (\d+)/m), 1);
    assert.ok((await metric(/^warden_lock_enforcement_lag_seconds_sum (\S+)/m)) < 10);
  });

  test('JSON logs carry ISO times and level names', () => {
    const lines = w
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 0, w.output());
    for (const l of lines) {
      const o = JSON.parse(l) as { level: unknown; time: unknown };
      assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level as string), l);
      assert.match(String(o.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    assert.ok(lines.some((l) => JSON.parse(l).msg === 'warden started'));
  });
});

test('warden start --debug logs at debug level (a failed TLS handshake shows)', async () => {
  const dir = tempDir();
  const proxyPort = await freePort();
  const file = join(dir, 'warden.yaml');
  writeFileSync(
    file,
    `version: v1\ndata_dir: ${join(dir, 'data')}\nlog: { format: json }\nproxy_service:\n  listen_addr: 127.0.0.1:${proxyPort}\nssh_service:\n  listen_addr: 127.0.0.1:${await freePort()}\n`,
  );
  const child = spawn(
    process.execPath,
    [join(root, 'dist', 'warden.js'), 'start', '--debug', '--config', file],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out = captureOutput(child);
  try {
    await waitForText(out.all, /warden started/);
    // Plain text on the TLS port: the handshake fails, which is logged at debug level only.
    await new Promise<void>((r) => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port: proxyPort,
        rejectUnauthorized: false,
        maxVersion: 'TLSv1.1',
      });
      s.on('error', () => r());
      s.on('close', () => r());
    });
    await waitForText(out.all, /\{"level":"debug","time":"[^"]+".*"msg":"TLS handshake failed"/, 5000);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
