import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  AES_FIRST_CIPHERS,
  cpuHasAes,
  openSshConfig,
  openSshMatchConfig,
  shellQuote,
  writeOpenSshIdentityPub,
} from './openssh-config';

const base = {
  cluster: 'example.com',
  proxy: 'proxy.example.com:3080',
  profileDir: '/home/alice/.warden/profiles/proxy.example.com_3080',
  wshCommand: "/usr/bin/node '/opt/my warden/dist/wsh.js'",
};

test('one block for all nodes and *.<cluster>, one HostKeyAlias per node', () => {
  const text = openSshConfig({ ...base, nodes: ['web-2', 'web-1', 'web-1'] });
  const lines = text.split('\n');
  assert.ok(lines.includes('Host *.example.com web-1 web-2'));
  const dir = base.profileDir;
  for (const want of [
    `    UserKnownHostsFile ${dir}/known_hosts`,
    `    IdentityFile ${dir}/key.pem`,
    `    CertificateFile ${dir}/key-cert.pub`,
    '    IdentitiesOnly yes',
    '    StrictHostKeyChecking yes',
    "    ProxyCommand /usr/bin/node '/opt/my warden/dist/wsh.js' proxy ssh --login=%r %h",
  ]) {
    assert.ok(lines.includes(want), want);
  }
  assert.match(
    text,
    /\nHost web-1\n {4}HostKeyAlias web-1\.example\.com\nHost web-2\n {4}HostKeyAlias web-2\.example\.com\n$/,
  );
});

test('with no nodes only the wildcard is configured', () => {
  const text = openSshConfig({ ...base, nodes: [] });
  assert.ok(text.split('\n').includes('Host *.example.com'));
  assert.doesNotMatch(text, /HostKeyAlias/);
});

test('node names that are not plain host names are left out (no pattern injection)', () => {
  const text = openSshConfig({ ...base, nodes: ['ok', '*', 'a b', 'x\nProxyCommand evil', '!neg'] });
  assert.ok(text.split('\n').includes('Host *.example.com ok'));
  assert.doesNotMatch(text, /evil|!neg|Host \*\n/);
});

test('% in paths is doubled and paths with spaces are quoted', () => {
  const text = openSshConfig({
    ...base,
    profileDir: '/home/a b/100%',
    wshCommand: "'/x/100%/node' wsh",
    nodes: [],
  });
  assert.match(text, /IdentityFile "\/home\/a b\/100%%\/key\.pem"/);
  assert.match(text, /ProxyCommand '\/x\/100%%\/node' wsh proxy ssh --login=%r %h/);
});

test('shellQuote leaves plain words alone and quotes the rest for sh', () => {
  assert.equal(shellQuote('/usr/bin/node'), '/usr/bin/node');
  assert.equal(shellQuote('/a b/c'), "'/a b/c'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote('$(x)'), "'$(x)'");
});

test('writeOpenSshIdentityPub writes key.pem.pub once, atomically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-osc-'));
  try {
    writeOpenSshIdentityPub(dir, 'ecdsa-sha2-nistp256 AAAA alice\n');
    const path = join(dir, 'key.pem.pub');
    assert.equal(readFileSync(path, 'utf8'), 'ecdsa-sha2-nistp256 AAAA alice\n');
    assert.equal(statSync(path).mode & 0o777, 0o644);
    writeFileSync(path, 'stale\n');
    writeOpenSshIdentityPub(dir, 'ecdsa-sha2-nistp256 AAAA alice');
    assert.equal(readFileSync(path, 'utf8'), 'ecdsa-sha2-nistp256 AAAA alice\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Match exec form: bare names are checked with wsh config --is-node, then go to NAME.<cluster>', () => {
  const text = openSshMatchConfig(base);
  const lines = text.split('\n');
  assert.ok(
    lines.includes(
      `Match !host *.example.com,*.* exec "/usr/bin/node '/opt/my warden/dist/wsh.js' config --is-node '%h'"`,
    ),
    text,
  );
  assert.equal(lines[lines.indexOf('Match host *.example.com') - 1], '    Hostname %h.example.com');
  assert.ok(
    lines.includes("    ProxyCommand /usr/bin/node '/opt/my warden/dist/wsh.js' proxy ssh --login=%r %h"),
  );
  assert.ok(lines.includes(`    CertificateFile ${base.profileDir}/key-cert.pub`));
  assert.doesNotMatch(text, /^Host /m);
});

test('aesFirst puts AES-GCM first in a Ciphers line for every Warden host; without it OpenSSH keeps its order', () => {
  const line = `    Ciphers ${AES_FIRST_CIPHERS}`;
  assert.match(
    AES_FIRST_CIPHERS,
    /^aes128-gcm@openssh\.com,aes256-gcm@openssh\.com,chacha20-poly1305@openssh\.com,/,
  );
  const host = openSshConfig({ ...base, nodes: ['web-1'], aesFirst: true }).split('\n');
  assert.equal(host[host.indexOf('Host *.example.com web-1') + 1], line);
  const match = openSshMatchConfig({ ...base, aesFirst: true }).split('\n');
  assert.equal(match[match.indexOf('Match host *.example.com') + 1], line);
  assert.doesNotMatch(openSshConfig({ ...base, nodes: ['web-1'] }), /Ciphers/);
  assert.doesNotMatch(openSshMatchConfig(base), /Ciphers/);
});

test("cpuHasAes reads the aes flag of /proc/cpuinfo (x86 flags, Arm Features); other systems keep OpenSSH's order", () => {
  const x86 = 'processor\t: 0\nflags\t\t: fpu vme sse2 pclmulqdq aes avx avx2\n';
  assert.equal(
    cpuHasAes('linux', () => x86),
    true,
  );
  assert.equal(
    cpuHasAes('linux', () => 'flags\t\t: fpu vme sse2 avx aesx vaes_like\n'),
    false,
  );
  assert.equal(
    cpuHasAes('linux', () => 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n'),
    true,
  );
  assert.equal(
    cpuHasAes('linux', () => 'Features\t: fp asimd evtstrm crc32\n'),
    false,
  );
  assert.equal(
    cpuHasAes('linux', () => {
      throw new Error('ENOENT');
    }),
    false,
  );
  assert.equal(cpuHasAes('darwin'), true);
  assert.equal(cpuHasAes('freebsd'), false);
});
