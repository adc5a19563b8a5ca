/**
 * CLI conventions of `wsh` and `wctl` as a new user meets them (issue 16): a reader that goes
 * away early, Ctrl-C, unknown flags with a suggestion, --format on everything that prints data,
 * --debug, environment variables in --help, and shell completion from the command table.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addUserAndLogin,
  requireTool,
  runCli,
  runCliClosedStdout,
  spawnCli,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import { parse as parseYaml } from 'yaml';

const PASSWORD = 'correct horse battery staple';

describe('CLI conventions', () => {
  let w: WardenProcess;
  const home = () => join(w.dir, 'home-alice');
  const wshEnv = () => ({ ...w.env, WARDEN_HOME: home() });

  before(async () => {
    w = await startWarden();
    await addUserAndLogin(w, 'alice', {
      roles: 'access,editor',
      logins: 'root',
      home: home(),
      password: PASSWORD,
    });
  });
  after(async () => {
    await w?.stop();
  });

  test('a reader that goes away early ends every command quietly (no EPIPE stack trace)', async () => {
    const cases: ['wsh' | 'wctl', string[]][] = [
      ['wctl', ['get', 'roles']],
      ['wctl', ['audit', 'search']],
      ['wctl', ['status']],
      ['wsh', ['status']],
      ['wsh', ['config']],
      ['wsh', ['ls']],
      ['wsh', ['--help']],
    ];
    for (const [cmd, args] of cases) {
      const res = await runCliClosedStdout(cmd, args, { env: cmd === 'wsh' ? wshEnv() : w.env });
      assert.equal(res.stderr, '', `${cmd} ${args.join(' ')}: nothing on stderr`);
      assert.equal(res.code, 141, `${cmd} ${args.join(' ')}: 128+SIGPIPE, as a shell reports it`);
    }
    // And through a real shell pipe, as users type it.
    const sh = spawnSync('sh', ['-c', `"${process.execPath}" dist/wsh.js config | head -1`], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, ...wshEnv() },
      encoding: 'utf8',
    });
    assert.equal(sh.stderr, '');
    assert.match(sh.stdout, /^# Warden cluster/);
  });

  test('Ctrl-C at a prompt exits 130 without a message', async () => {
    const login = spawnCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], { env: wshEnv() });
    for (let i = 0; i < 200 && !login.stderr().includes('Enter password'); i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.match(login.stderr(), /Enter password/);
    login.child.kill('SIGINT');
    assert.equal(await login.exited, 130);
    assert.doesNotMatch(login.stderr(), /ERROR|at .*\.js/);
  });

  test('an unknown flag or command is one friendly line with a suggestion', async () => {
    const flag = await runCli('wsh', ['login', '--prxy=127.0.0.1:3080']);
    assert.equal(flag.code, 1);
    assert.equal(
      flag.stderr,
      'ERROR: unknown flag --prxy; did you mean --proxy?\nRun `wsh login --help` for its flags.\n',
    );
    const value = await runCli('wctl', ['users', 'add', 'bob', '--roles']);
    assert.match(value.stderr, /^ERROR: flag --roles needs a value: --roles=ROLES\n/);
    const sw = await runCli('wsh', ['login', '--insecure=yes']);
    assert.match(sw.stderr, /^ERROR: flag --insecure takes no value/);
    const short = await runCli('wsh', ['ssh', '-x', 'node-1']);
    assert.match(short.stderr, /^ERROR: unknown flag -x\n/);
    const cmd = await runCli('wctl', ['users', 'lss']);
    assert.match(cmd.stderr, /^ERROR: unknown command "wctl users lss"; did you mean "wctl users ls"\?/);
    const top = await runCli('wsh', ['sttaus']);
    assert.match(top.stderr, /^ERROR: unknown command "sttaus"; did you mean "wsh status"\?/);
    assert.doesNotMatch(flag.stderr + value.stderr + cmd.stderr, /positional argument|'--/);
  });

  test('--format=json|yaml on everything that prints data', async () => {
    const version = JSON.parse((await runCli('wsh', ['version', '--format=json'])).stdout);
    assert.match(version.version, /^\d+\.\d+\.\d+$/);
    assert.match((await runCli('wctl', ['version', '--format=yaml'])).stdout, /^version: \d/);
    const status = await runCli('wctl', ['status', '--format=json'], { env: w.env });
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout);
    assert.equal(s.ca_pin, w.caPin);
    assert.equal(typeof s.cluster, 'string');
    const add = await runCli('wctl', ['users', 'add', 'bob', '--roles=access', '--format=json'], {
      env: w.env,
    });
    assert.equal(add.code, 0, add.stderr);
    const a = JSON.parse(add.stdout);
    assert.equal(a.user, 'bob');
    assert.match(a.token, /\S{16,}/);
    assert.match(a.signup_command, /wsh signup --proxy=/);
    const lock = await runCli('wctl', ['lock', '--user=bob', '--ttl=1h', '--format=yaml'], { env: w.env });
    assert.equal(lock.code, 0, lock.stderr);
    const l = parseYaml(lock.stdout);
    assert.equal(l.kind, 'lock');
    assert.equal(l.spec.target.user, 'bob');
    const bad = await runCli('wctl', ['status', '--format=xml'], { env: w.env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid --format "xml": expected text, json or yaml/);
  });

  test('--debug shows the stack of an error; --help lists the environment variables', async () => {
    const plain = await runCli('wsh', ['ls'], { env: { ...wshEnv(), WARDEN_HOME: join(w.dir, 'nobody') } });
    assert.equal(plain.code, 1);
    assert.doesNotMatch(plain.stderr, /\n\s+at /);
    const debug = await runCli('wsh', ['ls', '--debug'], {
      env: { ...wshEnv(), WARDEN_HOME: join(w.dir, 'nobody') },
    });
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /\n\s+at /);
    for (const [cmd, vars] of [
      ['wsh', ['WARDEN_PROXY', 'WARDEN_USER', 'WARDEN_HOME', 'WARDEN_TPM', 'WARDEN_DEBUG']],
      ['wctl', ['WARDEN_DATA_DIR', 'WARDEN_HOME', 'VISUAL, EDITOR', 'WARDEN_DEBUG']],
    ] as const) {
      const help = await runCli(cmd, ['--help']);
      for (const v of vars) assert.match(help.stdout, new RegExp(`\\n  ${v}\\b`), `${cmd} --help: ${v}`);
      assert.match(help.stdout, /--debug/);
      const sub = await runCli(cmd, ['status', '--help']);
      assert.match(sub.stdout, /Environment:/);
    }
  });

  test('wctl -c warden.yaml finds the data dir the file names (relative to the file)', async () => {
    const file = join(w.dir, 'relative.yaml');
    writeFileSync(file, 'version: v1\ndata_dir: data\n');
    const env = { ...w.env, WARDEN_DATA_DIR: '', WARDEN_HOME: join(w.dir, 'nobody') };
    const res = await runCli('wctl', ['-c', file, 'status', '--format=json'], { env, cwd: tmpdir() });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout).acting_as, 'admin identity');
    const long = await runCli('wctl', ['get', 'roles', `--config=${file}`], { env, cwd: tmpdir() });
    assert.equal(long.code, 0, long.stderr);
    const missing = await runCli('wctl', ['-c', join(w.dir, 'nope.yaml'), 'status'], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read config file ".*nope\.yaml": no such file/);
  });

  test('completion scripts come from the command table and complete commands and flags in bash', async (t) => {
    const bash = requireTool('bash');
    if (bash.skip) return t.skip(bash.skip);
    for (const cmd of ['wsh', 'wctl'] as const) {
      const res = await runCli(cmd, ['completion', 'bash']);
      assert.equal(res.code, 0, res.stderr);
      writeFileSync(join(w.dir, `${cmd}.bash`), res.stdout);
    }
    const complete = (cmd: string, words: string[]) =>
      spawnSync(
        'bash',
        [
          '-c',
          `source "$1"; COMP_WORDS=(${[cmd, ...words].map((x) => `'${x}'`).join(' ')}); COMP_CWORD=${words.length}; _${cmd}; printf '%s\\n' "\${COMPREPLY[@]}"`,
          'bash',
          join(w.dir, `${cmd}.bash`),
        ],
        { encoding: 'utf8', cwd: w.dir },
      )
        .stdout.split('\n')
        .filter(Boolean)
        .sort();
    assert.deepEqual(complete('wsh', ['db', 'l']), ['login', 'logout', 'ls']);
    assert.deepEqual(complete('wsh', ['st']), ['status']);
    assert.deepEqual(complete('wsh', ['ssh', '--no']), ['--no-remote-exec', '--no-tty']);
    // Words that are not commands (NODE) are skipped: flags of `ssh` still complete after it.
    assert.deepEqual(complete('wsh', ['ssh', '-t', 'node-1', '--lo']), ['--login']);
    assert.deepEqual(complete('wctl', ['users', 'a']), ['add']);
    assert.deepEqual(complete('wctl', ['get', '--fo']), ['--format']);
    for (const shell of ['zsh', 'fish']) {
      const res = await runCli('wsh', ['completion', shell]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /db ls/);
      assert.match(res.stdout, /no-remote-exec/);
    }
    const zsh = requireTool('zsh');
    if (!zsh.skip) {
      writeFileSync(join(w.dir, '_wsh'), (await runCli('wsh', ['completion', 'zsh'])).stdout);
      const check = spawnSync('zsh', ['-n', join(w.dir, '_wsh')], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr);
    }
    const bad = await runCli('wsh', ['completion', 'tcsh']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected bash, zsh or fish/);
  });

  test('tables fit the terminal width (COLUMNS); an empty wsh db ls says so', async () => {
    const audit = await runCli('wctl', ['audit', 'search'], { env: { ...w.env, COLUMNS: '80' } });
    assert.equal(audit.code, 0, audit.stderr);
    const lines = audit.stdout.trimEnd().split('\n');
    assert.ok(lines.length > 2);
    for (const l of lines) assert.ok(l.length <= 80, `${l.length}: ${l}`);
    assert.ok(
      lines.some((l) => l.endsWith('…')),
      'long Details cut with …',
    );
    const dbs = await runCli('wsh', ['db', 'ls'], { env: wshEnv() });
    assert.equal(dbs.code, 0, dbs.stderr);
    assert.equal(dbs.stdout, 'No databases found\n');
  });

  // Last: it changes the cluster's device trust mode.
  test("the README's cap.yaml is accepted by wctl create -f, and wctl get cap shows it", async () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const m = /```yaml\n(kind: cluster_auth_preference\n[\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has a complete cap.yaml');
    const file = join(w.dir, 'cap.yaml');
    writeFileSync(file, m[1]!);
    const created = await runCli('wctl', ['create', '-f', file], { env: w.env });
    assert.equal(created.code, 0, created.stderr);
    const cap = parseYaml((await runCli('wctl', ['get', 'cap', '--format=yaml'], { env: w.env })).stdout);
    const spec = (Array.isArray(cap) ? cap[0] : cap).spec;
    assert.equal(spec.device_trust.mode, 'required');
    assert.equal(spec.second_factor, 'on');
  });
});
