import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  asUser,
  isAllowedEnv,
  isValidLoginName,
  lookupLogin,
  parsePasswdLine,
  sessionCwd,
  sessionEnv,
  shellCommand,
  switchRefusal,
} from './login';

test('passwd lines: fields, empty shell means /bin/sh, malformed lines are ignored', () => {
  assert.deepEqual(parsePasswdLine('alice:x:1001:1002:Alice,,,:/home/alice:/bin/zsh'), {
    name: 'alice',
    uid: 1001,
    gid: 1002,
    home: '/home/alice',
    shell: '/bin/zsh',
  });
  assert.equal(parsePasswdLine('bob:x:1003:1003::/home/bob:')?.shell, '/bin/sh');
  for (const bad of ['', 'bob:x:1003:1003', 'bob:x:ten:1003::/h:/bin/sh', ':x:1:1::/h:/bin/sh']) {
    assert.equal(parsePasswdLine(bad), undefined, bad);
  }
});

test('login names: no leading dash, no slashes or spaces, at most 32 characters', () => {
  for (const ok of ['root', 'alice', 'svc_web-1', 'a.b', 'machine$']) assert.ok(isValidLoginName(ok), ok);
  for (const bad of ['', '-oProxyCommand=x', 'a b', '../root', 'a/b', 'x'.repeat(33), 'a\nb']) {
    assert.ok(!isValidLoginName(bad), bad);
  }
});

test('lookupLogin finds root and not a missing or invalid login', async () => {
  const root = await lookupLogin('root');
  assert.equal(root?.uid, 0);
  assert.equal(root?.name, 'root');
  assert.equal(await lookupLogin('warden-no-such-user'), undefined);
  assert.equal(await lookupLogin('-x'), undefined);
});

test('a non-root daemon serves only its own login', () => {
  assert.equal(switchRefusal({ uid: 0, name: 'root' }, 'alice', 'web-1'), undefined);
  assert.equal(switchRefusal({ uid: 1000, name: 'svc' }, 'svc', 'web-1'), undefined);
  assert.equal(
    switchRefusal({ uid: 1000, name: 'svc' }, 'root', 'web-1'),
    'access denied: node "web-1" runs as "svc" without root and accepts only login "svc"',
  );
});

test('commands run directly as the daemon user, through setpriv for another user', () => {
  const alice = { name: 'alice', uid: 1001, gid: 1002, home: '/home/alice', shell: '/bin/bash' };
  const prog = shellCommand(alice, { exec: 'id -un' });
  assert.deepEqual(prog, ['/bin/bash', '-c', 'id -un']);
  assert.deepEqual(shellCommand(alice, { shell: true }), ['/bin/bash', '-l']);
  assert.deepEqual(asUser(alice, { uid: 1001, name: 'alice' }, undefined, prog), {
    file: '/bin/bash',
    args: ['-c', 'id -un'],
  });
  assert.deepEqual(asUser(alice, { uid: 0, name: 'root' }, '/usr/bin/setpriv', prog), {
    file: '/usr/bin/setpriv',
    args: ['--reuid', '1001', '--regid', '1002', '--init-groups', '--', '/bin/bash', '-c', 'id -un'],
  });
  // Never silently run as root instead.
  assert.throws(() => asUser(alice, { uid: 0, name: 'root' }, undefined, prog), /setpriv/);
  assert.throws(() => asUser(alice, { uid: 1000, name: 'svc' }, '/usr/bin/setpriv', prog), /without root/);
});

test('the environment is built from scratch plus allow-listed client variables', () => {
  const alice = { name: 'alice', uid: 1001, gid: 1002, home: '/home/alice', shell: '/bin/bash' };
  const env = sessionEnv(alice, {
    sshClient: '10.0.0.1 5555 22',
    sshConnection: '10.0.0.1 5555 10.0.0.2 22',
    term: 'xterm-256color',
    requested: { LANG: 'C.UTF-8', LC_ALL: 'C', LD_PRELOAD: '/tmp/x.so', PATH: '/tmp', HOME: '/tmp' },
  });
  assert.deepEqual(env, {
    LANG: 'C.UTF-8',
    LC_ALL: 'C',
    USER: 'alice',
    LOGNAME: 'alice',
    HOME: '/home/alice',
    SHELL: '/bin/bash',
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/games',
    SSH_CLIENT: '10.0.0.1 5555 22',
    SSH_CONNECTION: '10.0.0.1 5555 10.0.0.2 22',
    TERM: 'xterm-256color',
  });
  assert.ok(!isAllowedEnv('LD_PRELOAD', 'x'));
  assert.ok(!isAllowedEnv('LANG', 'a\0b'));
  assert.ok(isAllowedEnv('TZ', 'UTC'));
});

test('a missing home directory starts the session in /', () => {
  const u = { name: 'n', uid: 65534, gid: 65534, home: '/nonexistent-warden-home', shell: '/bin/sh' };
  assert.equal(sessionCwd(u), '/');
  assert.equal(sessionCwd({ ...u, home: '/tmp' }), '/tmp');
});
