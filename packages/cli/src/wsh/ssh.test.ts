import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import type { LoadedProfile } from '@warden/client';
import { type CommandContext, type Program, runProgram, splitAtFirstPositional } from '../command';
import { wshCommands } from './commands';
import { nodeView, proxySshCommandLine, remoteCommand, wshCommandLine } from './ssh';
import { chooseLogin, nodeFromHost, parseTarget } from './target';

/** Runs `wsh ARGV` with the real command table, but captures what `wsh ssh` would receive. */
async function parsed(argv: string[]): Promise<{ code: number; ctx?: CommandContext; err: string }> {
  let got: CommandContext | undefined;
  const program: Program = {
    name: 'wsh',
    summary: 'test',
    version: '0',
    commands: wshCommands.map((c) => ({
      ...c,
      run: async (ctx: CommandContext) => {
        got = ctx;
        return 0;
      },
    })),
  };
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await runProgram(program, argv, {
    stdout: new PassThrough(),
    stderr,
    stdin: new PassThrough(),
    env: {},
  });
  return { code, ctx: got, err };
}

test('wsh ssh: flags before NODE, everything after NODE is the remote command', async () => {
  const r = await parsed([
    'ssh',
    '-L',
    '8080:localhost:80',
    '-t',
    '--login',
    'root',
    'web-1',
    'ls',
    '-la',
    '--help',
    '/',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.ctx?.positionals, ['web-1', 'ls', '-la', '--help', '/']);
  assert.deepEqual(r.ctx?.values.forward, ['8080:localhost:80']);
  assert.equal(r.ctx?.values.tty, true);
  assert.equal(r.ctx?.values.login, 'root');
});

test('wsh ssh: repeated -L, clustered short flags and -L with the value attached', async () => {
  const r = await parsed(['ssh', '-NL', '1:h:2', '-L3:h:4', '--forward=5:h:6', 'root@web-1']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.ctx?.values.forward, ['1:h:2', '3:h:4', '5:h:6']);
  assert.equal(r.ctx?.values['no-remote-exec'], true);
  assert.deepEqual(r.ctx?.positionals, ['root@web-1']);
});

test('wsh ssh: `--` ends the flags; a missing NODE and unknown flags before NODE are errors', async () => {
  assert.deepEqual((await parsed(['ssh', '--', '-weird-node', 'cmd'])).ctx?.positionals, [
    '-weird-node',
    'cmd',
  ]);
  const missing = await parsed(['ssh', '-t']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /missing argument/);
  const unknown = await parsed(['ssh', '-x', 'web-1']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /unknown flag -x/);
});

test('other commands still parse flags after positionals', async () => {
  const r = await parsed(['proxy', 'ssh', 'web-1', '--login=root']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.ctx?.positionals, ['web-1']);
  assert.equal(r.ctx?.values.login, 'root');
});

test('splitAtFirstPositional knows which flags take a value', () => {
  const opts = {
    login: { type: 'string', short: 'l', help: '' },
    tty: { type: 'boolean', short: 't', help: '' },
  } as const;
  assert.deepEqual(splitAtFirstPositional(['-l', 'root', 'n', '-l', 'x'], opts), [
    ['-l', 'root'],
    ['n', '-l', 'x'],
  ]);
  assert.deepEqual(splitAtFirstPositional(['-tl', 'root', 'n'], opts), [['-tl', 'root'], ['n']]);
  assert.deepEqual(splitAtFirstPositional(['-lroot', 'n'], opts), [['-lroot'], ['n']]);
  assert.deepEqual(splitAtFirstPositional(['--login=root', 'n', 'c'], opts), [['--login=root'], ['n', 'c']]);
  assert.deepEqual(splitAtFirstPositional(['-t'], opts), [['-t'], []]);
  assert.deepEqual(splitAtFirstPositional(['-', 'x'], opts), [[], ['-', 'x']]);
});

test('parseTarget splits [login@]node at the last @', () => {
  assert.deepEqual(parseTarget('web-1'), { node: 'web-1' });
  assert.deepEqual(parseTarget('root@web-1'), { login: 'root', node: 'web-1' });
  assert.deepEqual(parseTarget('a@b@web-1'), { login: 'a@b', node: 'web-1' });
  for (const bad of ['', '@web-1', 'root@', 'a b']) {
    assert.throws(
      () => parseTarget(bad),
      (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      bad,
    );
  }
});

test('chooseLogin: --login, then login@, then the first login of the profile', () => {
  const profile = { logins: ['ubuntu', 'root'] } as LoadedProfile;
  assert.equal(chooseLogin(undefined, undefined, profile), 'ubuntu');
  assert.equal(chooseLogin(undefined, 'root', profile), 'root');
  assert.equal(chooseLogin('root', undefined, profile), 'root');
  assert.equal(chooseLogin('root', 'root', profile), 'root');
  assert.throws(() => chooseLogin('root', 'ubuntu', profile), /two logins given/);
  assert.throws(
    () => chooseLogin(undefined, undefined, { logins: [] as string[] } as LoadedProfile),
    /grant no logins/,
  );
});

test('nodeFromHost strips the cluster suffix and a port', () => {
  assert.equal(nodeFromHost('web-1', 'example.com'), 'web-1');
  assert.equal(nodeFromHost('web-1.example.com', 'example.com'), 'web-1');
  assert.equal(nodeFromHost('web-1.example.com:22', 'example.com'), 'web-1');
  assert.equal(nodeFromHost('web-1.other.com', 'example.com'), 'web-1.other.com');
});

test('remoteCommand joins words with spaces, as ssh does', () => {
  assert.equal(remoteCommand([]), undefined);
  assert.equal(remoteCommand(['ls', '-la', '/tmp']), 'ls -la /tmp');
});

test('wshCommandLine quotes node, its flags and the script for sh', () => {
  assert.equal(
    wshCommandLine('/usr/bin/node', ['--import', 'tsx'], '/nonexistent/my dir/wsh.js'),
    "/usr/bin/node --import tsx '/nonexistent/my dir/wsh.js'",
  );
});

test('the ProxyCommand runs dist/wsh-proxy-ssh.js beside a bundled wsh.js, else wsh itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden dist-'));
  try {
    const wshJs = join(dir, 'wsh.js');
    writeFileSync(wshJs, '');
    // Not built yet: wsh itself.
    assert.equal(proxySshCommandLine('/usr/bin/node', [], wshJs), `/usr/bin/node '${wshJs}'`);
    writeFileSync(join(dir, 'wsh-proxy-ssh.js'), '');
    assert.equal(
      proxySshCommandLine('/usr/bin/node', [], wshJs),
      `env -u NODE_EXTRA_CA_CERTS SSL_CERT_FILE=/dev/null SSL_CERT_DIR=/dev/null /usr/bin/node --use-openssl-ca '${join(dir, 'wsh-proxy-ssh.js')}'`,
    );
    // From the sources (tsx), wsh.ts: wsh itself.
    const wshTs = join(dir, 'wsh.ts');
    writeFileSync(wshTs, '');
    assert.equal(
      proxySshCommandLine('/usr/bin/node', ['--import', 'tsx'], wshTs),
      `/usr/bin/node --import tsx '${wshTs}'`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('wsh ls reads a node by hand: name, optional string labels, hostname and address', () => {
  const node = {
    kind: 'node',
    metadata: { name: 'id-1', labels: { env: 'prod' } },
    spec: { hostname: 'web-1', addr: '10.0.0.1:3022' },
  };
  assert.equal(nodeView(node), node);
  assert.ok(nodeView({ metadata: { name: 'id-2' } }));
  for (const bad of [
    null,
    [],
    { metadata: {} },
    { metadata: { name: 1 } },
    { metadata: { name: 'x', labels: { env: 1 } } },
    { metadata: { name: 'x', labels: [] } },
    { metadata: { name: 'x' }, spec: { hostname: 5 } },
    { metadata: { name: 'x' }, spec: 'web-1' },
  ]) {
    assert.equal(nodeView(bad), undefined, JSON.stringify(bad));
  }
});
