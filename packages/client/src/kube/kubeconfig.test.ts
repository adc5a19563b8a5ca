import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kubeTlsServerName } from '@warden/api';
import { parse } from 'yaml';
import type { LoadedProfile } from '../profile';
import { proxyHost, removeKubeLogins, writeKubeLogin } from '.';

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
    assert.equal(exec.command, '/usr/bin/wsh');
    assert.deepEqual(exec.args, ['kube', 'credentials', '--proxy=proxy.example.com:3080', '--cluster=prod']);
    assert.deepEqual(removeKubeLogins(profile, 'prod', env), ['acme-prod']);
    assert.equal(parse(readFileSync(env.KUBECONFIG, 'utf8')).clusters.length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
