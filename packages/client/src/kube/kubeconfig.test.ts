import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kubeTlsServerName } from '@warden/api';
import { parse } from 'yaml';
import type { LoadedProfile } from '../profile';
import { writeProfileDir } from '../profile/store';
import {
  clearKubeExecCache,
  execCredential,
  KUBE_EXEC_SCRIPT,
  kubeCredential,
  kubeExecCacheFile,
  proxyHost,
  removeKubeLogins,
  writeKubeLogin,
} from '.';

test('the kube TLS server name: kube.<host>, kube.localhost for IP addresses', () => {
  assert.equal(kubeTlsServerName('proxy.example.com'), 'kube.proxy.example.com');
  assert.equal(kubeTlsServerName('Proxy.Example.COM'), 'kube.proxy.example.com');
  assert.equal(kubeTlsServerName('localhost'), 'kube.localhost');
  for (const ip of ['127.0.0.1', '10.1.2.3', '::1', '[::1]', 'fd00::5'])
    assert.equal(kubeTlsServerName(ip), 'kube.localhost', ip);
  assert.equal(proxyHost('proxy.example.com:3080'), 'proxy.example.com');
  assert.equal(proxyHost('127.0.0.1:3080'), '127.0.0.1');
  assert.equal(proxyHost('[::1]:3080'), '::1');
  assert.equal(proxyHost('proxy.example.com'), 'proxy.example.com');
});

test('wsh kube login writes the proxy address with the cluster path and the kube TLS server name; logout removes it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-kubeconfig-'));
  try {
    const env = { KUBECONFIG: join(dir, 'config') };
    const profile = {
      cluster: 'acme',
      dir: join(dir, 'profile'),
      proxy: 'proxy.example.com:3080',
      hostCaPems: ['-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----'],
      insecure: false,
    } as LoadedProfile;
    const { context } = writeKubeLogin({ profile, kubeCluster: 'prod', wshCommand: ['/usr/bin/wsh'], env });
    assert.equal(context, 'acme-prod');
    const cfg = parse(readFileSync(env.KUBECONFIG, 'utf8'));
    assert.equal(cfg['current-context'], 'acme-prod');
    const cluster = cfg.clusters.find((c: { name: string }) => c.name === 'acme-prod').cluster;
    assert.equal(cluster.server, 'https://proxy.example.com:3080/kube/prod');
    assert.equal(cluster['tls-server-name'], 'kube.proxy.example.com');
    assert.equal(cluster['insecure-skip-tls-verify'], undefined);
    const exec = cfg.users.find((u: { name: string }) => u.name === 'acme-prod').user.exec;
    assert.equal(exec.command, '/bin/sh');
    assert.deepEqual(exec.args, [
      '-c',
      KUBE_EXEC_SCRIPT,
      'wsh-kube-credentials',
      join(dir, 'profile', 'kube', 'exec', 'prod.cred'),
      '/usr/bin/wsh',
      'kube',
      'credentials',
      '--proxy=proxy.example.com:3080',
      '--cluster=prod',
    ]);
    mkdirSync(join(dir, 'profile', 'kube', 'exec'), { recursive: true });
    writeFileSync(kubeExecCacheFile(profile, 'prod'), 'cached');
    writeFileSync(kubeExecCacheFile(profile, 'other'), 'cached');
    assert.deepEqual(removeKubeLogins(profile, 'prod', env), ['acme-prod']);
    assert.equal(existsSync(kubeExecCacheFile(profile, 'prod')), false, 'its cached credential is gone');
    assert.equal(existsSync(kubeExecCacheFile(profile, 'other')), true, "another cluster's stays");
    assert.equal(parse(readFileSync(env.KUBECONFIG, 'utf8')).clusters.length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the exec plugin script: /bin/sh prints the cached ExecCredential while it is valid, else runs wsh', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-kube-exec-'));
  try {
    writeFileSync(join(dir, 'tls.pem'), 'LOGIN');
    const profile = { dir, tlsCert: 'LOGIN' } as LoadedProfile;
    const expires = new Date(Date.now() + 30 * 60_000).toISOString();
    let issued = 0;
    const request = async () => {
      issued++;
      return { cert_pem: `KUBE CERT ${issued}`, expires };
    };
    const cred = await kubeCredential(profile, 'prod', request);
    const file = kubeExecCacheFile(profile, 'prod');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'kube', 'exec')).mode & 0o777, 0o700);
    const [until, json, login] = readFileSync(file, 'utf8').split('\n');
    assert.equal(json, JSON.stringify(execCredential(cred)), 'the second line is what kubectl reads');
    assert.equal(Number(until), Math.floor(Date.parse(expires) / 1000) - 60, 'a minute before it expires');
    assert.equal(login, createHash('sha256').update('LOGIN').digest('hex'));
    const plugin = (cache: string) =>
      spawnSync(
        '/bin/sh',
        ['-c', KUBE_EXEC_SCRIPT, 'wsh-kube-credentials', cache, 'echo', 'FALLBACK', 'a b'],
        {
          encoding: 'utf8',
        },
      );
    let r = plugin(file);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `${json}\n`, 'served from the cache');
    assert.equal(r.stderr, '');
    // Anything but a valid cache runs the fallback command with its arguments intact.
    const cases: [string, string | undefined][] = [
      ['missing', undefined],
      ['expired', `${Math.floor(Date.now() / 1000) - 1}\n${json}\n${login}\n`],
      ['not a number', `soon\n${json}\n`],
      ['no credential line', `${until}\n`],
      ['empty credential line', `${until}\n\n`],
      ['no newline after the credential', `${until}\n${json}`],
    ];
    for (const [what, text] of cases) {
      const f = join(dir, `${what}.cred`);
      if (text !== undefined) writeFileSync(f, text);
      r = plugin(f);
      assert.equal(r.status, 0, what);
      assert.equal(r.stdout, 'FALLBACK a b\n', what);
      assert.equal(r.stderr, '', what);
    }
    // The full command agrees: an expired first line is not served either.
    writeFileSync(file, `${Math.floor(Date.now() / 1000) - 1}\n${json}\n${login}\n`);
    await kubeCredential(profile, 'prod', request);
    assert.equal(issued, 2);
    assert.ok(Number(readFileSync(file, 'utf8').split('\n')[0]) * 1000 > Date.now(), 'renewed');
    // A login (any new profile files) deletes the cache; so does clearKubeExecCache.
    await kubeCredential(profile, 'dev', request);
    clearKubeExecCache(profile, 'dev');
    assert.equal(existsSync(kubeExecCacheFile(profile, 'dev')), false);
    assert.equal(existsSync(file), true);
    writeProfileDir(
      dir,
      { proxy: 'p:1', cluster: 'c', user: 'u', roles: [], logins: [], expires, insecure: false },
      {
        keyPem: 'K',
        sshPublicKey: 'S',
        sshCert: 'C',
        tlsCert: 'LOGIN 2',
        userCaPems: [],
        hostCaPems: [],
        knownHosts: '',
      },
    );
    assert.equal(existsSync(file), false, 'a new login deleted the cache');
    // A credential whose login was replaced while it was being issued is not cached.
    await kubeCredential(profile, 'prod', request);
    assert.equal(existsSync(file), false, 'issued for the old login: returned, not cached');
    assert.throws(() => kubeExecCacheFile(profile, '../x'), /not a kube_cluster name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
