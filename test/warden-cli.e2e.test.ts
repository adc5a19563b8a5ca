/**
 * `warden` itself: help, version, bad configs (one clear error, exit 1, nothing written),
 * a PostgreSQL backend that is misconfigured or unreachable, and the zero-config start from
 * the README.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { captureOutput, freePort, requireTool, runCli, withMachineLock } from '@warden/testkit';

const root = resolve(import.meta.dirname, '..');

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'warden-cli-'));
}

test('warden --help and version', async () => {
  const help = await runCli('warden', ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: warden COMMAND/);
  assert.match(help.stdout, /--data-dir=DIR/);
  const version = await runCli('warden', ['version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^warden v\d+\.\d+\.\d+/);
  const unknown = await runCli('warden', ['strat']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown command "strat"/);
});

test('a bad config is one clear error naming the field and line, exit 1, nothing written', async () => {
  const dir = tempDir();
  try {
    const data = join(dir, 'data');
    const cases: [string, RegExp][] = [
      [
        `version: v1\ndata_dir: ${data}\nauth_service:\n  authentication:\n    second_factor: maybe\n`,
        /auth_service\.authentication\.second_factor: .*on, otp, off.*line 5/,
      ],
      [
        `version: v1\ndata_dir: ${data}\nproxy_service:\n  listen_addr: nowhere\n`,
        /proxy_service\.listen_addr.*line 4/,
      ],
      [`version: v1\ndata_dir: ${data}\nauth_servise: {}\n`, /auth_servise.*line 3/],
      [`version: v1\ndata_dir: ${data}\nstorage: [\n`, /line \d/],
    ];
    for (const [yaml, expected] of cases) {
      const file = join(dir, 'warden.yaml');
      writeFileSync(file, yaml);
      const res = await runCli('warden', ['start', '--config', file]);
      assert.equal(res.code, 1, yaml);
      assert.match(res.stderr, expected);
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${res.stderr}`);
      assert.equal(existsSync(data), false, 'nothing written');
    }
    const missing = await runCli('warden', ['start', '--config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read config file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('storage postgres: a bad option or an unreachable server is one clear error, exit 1, no data dir, no password shown', async () => {
  const dir = tempDir();
  try {
    const data = join(dir, 'data');
    const pg = (name: string, storage: string) => {
      const file = join(dir, name);
      writeFileSync(file, `version: v1\ndata_dir: ${data}\nstorage:\n  type: postgres\n${storage}`);
      return runCli('warden', ['start', '--config', file], { timeoutMs: 60_000 });
    };
    const port = await freePort(); // nothing listens there
    const [bad, unreachable] = await Promise.all([
      pg('bad.yaml', '  conn_string: postgres://warden:hunter2@db/warden\n  tls: { mode: prefer }\n'),
      pg('down.yaml', `  conn_string: postgres://warden:hunter2@127.0.0.1:${port}/warden\n`),
    ]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      `ERROR: ${join(dir, 'bad.yaml')}: storage.tls.mode: expected one of disable, require, verify-ca, verify-full (line 6)\n`,
    );
    // Retried for a while (the database may be starting too), then one ERROR line; exit 1, not a crash.
    assert.equal(unreachable.code, 1, unreachable.stderr);
    const lines = unreachable.stderr.trim().split('\n');
    assert.match(
      lines.at(-1) ?? '',
      new RegExp(
        `^ERROR: PostgreSQL backend: cannot reach PostgreSQL at warden@127\\.0\\.0\\.1:${port}/warden .*is it running\\?$`,
      ),
    );
    assert.equal(lines.filter((l) => l.startsWith('ERROR')).length, 1, unreachable.stderr);
    assert.doesNotMatch(unreachable.stderr + unreachable.stdout + bad.stderr, /hunter2/);
    assert.equal(existsSync(data), false, 'nothing written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with no config at all, warden starts with data in ./warden-data and the proxy on 127.0.0.1:3080', () =>
  // The default ports are the machine's: other test runs (other worktrees) wait their turn
  // rather than failing; anything else holding 3080 fails at once with "already in use".
  withMachineLock('warden-default-ports', zeroConfigStart));

async function zeroConfigStart(): Promise<void> {
  const dir = tempDir();
  const child = spawn(process.execPath, [join(root, 'dist', 'warden.js'), 'start'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = captureOutput(child);
  try {
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`not started:\n${out.all()}`)), 30_000);
      // The banner comes after the "warden started" log line, maybe in a later chunk.
      const check = () => {
        if (/warden started/.test(out.all()) && /Proxy listening on/.test(out.all())) {
          clearTimeout(t);
          res();
        }
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      // Exited before it started (e.g. "already in use"): fail now, and leave no 30 s timer
      // keeping the test process alive.
      child.on('exit', () => {
        clearTimeout(t);
        rej(new Error(`exited:\n${out.all()}`));
      });
    });
    assert.match(out.all(), /Proxy listening on https:\/\/127\.0\.0\.1:3080/);
    assert.ok(readdirSync(join(dir, 'warden-data')).includes('backend.sqlite'));
    const status = await runCli('wctl', ['status'], { cwd: dir, env: { WARDEN_DATA_DIR: '' } });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Cluster: +warden/);
  } finally {
    // A warden that already exited (e.g. "already in use") emits no second 'exit': don't wait for one.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

test('wctl without an identity explains where it looked', async () => {
  const dir = tempDir();
  try {
    const res = await runCli('wctl', ['get', 'users'], {
      cwd: dir,
      env: { WARDEN_HOME: join(dir, 'home'), WARDEN_DATA_DIR: '' },
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no identity: run wctl on the auth host/);
    const help = await runCli('wctl', ['lock', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--device=ID/);
    const wshHelp = await runCli('wsh', ['--help']);
    assert.match(wshHelp.stdout, /signup/);
    const bad = await runCli('wsh', ['login', '--bogus']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown flag --bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm run build writes a man page per command, generated from the help text', async (t) => {
  const man = join(root, 'dist', 'man');
  for (const page of ['wsh.1', 'wsh-ssh.1', 'wsh-db-connect.1', 'wctl.1', 'wctl-users-add.1', 'wctl-lock.1'])
    assert.ok(existsSync(join(man, page)), page);
  const text = readFileSync(join(man, 'wctl-users-add.1'), 'utf8');
  assert.match(text, /^\.TH WCTL-USERS-ADD 1/);
  assert.match(text, /\.SH OPTIONS[\s\S]*\\-\\-roles=\\fIROLES\\fR/);
  assert.match(text, /\.SH ENVIRONMENT[\s\S]*WARDEN_DATA_DIR/);
  const tool = requireTool('man');
  if (tool.skip) return t.skip(tool.skip);
  const rendered = spawnSync('man', ['-l', join(man, 'wsh-ssh.1')], {
    encoding: 'utf8',
    env: { ...process.env, MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '100' },
  });
  assert.equal(rendered.status, 0, rendered.stderr);
  assert.match(rendered.stdout, /wsh-ssh - Run a login shell or a command on a node/);
  assert.match(rendered.stdout, /--no-remote-exec/);
});

test('npm install -g . puts warden, wsh and wctl on the PATH (package.json bin)', async () => {
  const prefix = tempDir();
  try {
    const npm = spawnSync(
      'npm',
      ['install', '-g', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--prefix', prefix, root],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(npm.status, 0, npm.stderr);
    for (const cmd of ['warden', 'wsh', 'wctl']) {
      // Through the symlink npm made, from another directory.
      const res = spawnSync(join(prefix, 'bin', cmd), ['version'], { encoding: 'utf8', cwd: prefix });
      assert.equal(res.status, 0, `${cmd}: ${res.stderr}`);
      assert.match(res.stdout, new RegExp(`^${cmd} v\\d+\\.\\d+\\.\\d+`));
    }
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});
