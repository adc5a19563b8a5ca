import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  asUser,
  isAllowedEnv,
  isValidLoginName,
  LoginLookup,
  lookupLogin,
  parsePasswdFile,
  parsePasswdLine,
  passwdFilesFirst,
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

test('LoginLookup: /etc/passwd answers when NSS reads files first, getent otherwise; changes are seen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-login-'));
  try {
    const passwd = join(dir, 'passwd');
    const nsswitch = join(dir, 'nsswitch.conf');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/zsh\n');
    writeFileSync(nsswitch, '# comment\npasswd:         files systemd\ngroup: files\n');
    const asked: string[] = [];
    const getent = async (name: string) => {
      asked.push(name);
      return name === 'ldapuser' ? 'ldapuser:*:5000:5000::/home/ldapuser:/bin/sh\n' : '';
    };
    const lookup = new LoginLookup({ passwdPath: passwd, nsswitchPath: nsswitch, getent });
    assert.deepEqual(await lookup.lookup('alice'), {
      name: 'alice',
      uid: 1001,
      gid: 1001,
      home: '/home/alice',
      shell: '/bin/zsh',
    });
    assert.deepEqual(asked, [], 'found in the file NSS reads first: no getent');
    assert.equal((await lookup.lookup('ldapuser'))?.uid, 5000, 'not in the file: NSS through getent');
    assert.equal(await lookup.lookup('nobody-here'), undefined);
    assert.deepEqual(asked, ['ldapuser', 'nobody-here']);
    // The file changes (a new shell, a removed account): the next lookup reads it again.
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/fish\n');
    assert.equal((await lookup.lookup('alice'))?.shell, '/bin/fish');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n');
    assert.equal(await lookup.lookup('alice'), undefined);
    // Another source first (e.g. sss): getent decides, even for names in the file.
    writeFileSync(nsswitch, 'passwd: sss files\n');
    asked.length = 0;
    assert.equal(await lookup.lookup('root'), undefined, 'getent (here) does not know root');
    assert.deepEqual(asked, ['root']);
    // No getent at all: the file.
    const noGetent = new LoginLookup({
      passwdPath: passwd,
      nsswitchPath: nsswitch,
      getent: async () => undefined,
    });
    assert.equal((await noGetent.lookup('root'))?.uid, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lookupLogin agrees with getent for the accounts of this machine', async () => {
  for (const line of execFileSync('getent', ['passwd'], { encoding: 'utf8' }).split('\n').slice(0, 20)) {
    const entry = parsePasswdLine(line);
    if (!entry || !isValidLoginName(entry.name)) continue;
    assert.deepEqual(await lookupLogin(entry.name), parsePasswdFile(`${line}\n`).get(entry.name), entry.name);
  }
});

test('passwdFilesFirst reads the passwd line of nsswitch.conf', () => {
  assert.equal(passwdFilesFirst('passwd: files systemd\n'), true);
  assert.equal(passwdFilesFirst('passwd:\tcompat\n'), false);
  assert.equal(passwdFilesFirst('# passwd: sss\npasswd: sss files\n'), false);
  assert.equal(passwdFilesFirst('group: files\n'), true);
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
