import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { execCredential, kubeCredential, type LoadedProfile, profileName } from '@warden/client';
import { cachedKubeCredentials } from './kube-fast';

test('the fast path prints exactly what the full command would, and only from a cache the full command accepts', async () => {
  const home = mkdtempSync(join(tmpdir(), 'wsh-kube-fast-'));
  try {
    const proxy = '127.0.0.1:3080';
    const dir = join(home, 'profiles', profileName(proxy));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tls.pem'), 'LOGIN CERT 1');
    writeFileSync(join(home, 'current-profile'), `${profileName(proxy)}\n`);
    const profile = { dir, tlsCert: 'LOGIN CERT 1' } as LoadedProfile;
    const now = Date.parse('2026-12-06T08:00:00Z');
    const expires = new Date(now + 10 * 60_000).toISOString();
    let issued = 0;
    const cred = await kubeCredential(
      profile,
      'prod',
      async () => {
        issued++;
        return { cert_pem: 'KUBE CERT', expires };
      },
      now,
    );
    assert.equal(issued, 1);
    const env = { WARDEN_HOME: home };
    const want = `${JSON.stringify(execCredential(cred))}\n`;
    assert.equal(cachedKubeCredentials([`--proxy=${proxy}`, '--cluster=prod'], env, now), want);
    assert.equal(cachedKubeCredentials(['--cluster=prod'], env, now), want, 'the current profile');
    // Where the fast path declines, the full command (kubeCredential) issues a new credential.
    const declines = (args: string[], at: number) => {
      assert.equal(cachedKubeCredentials(args, env, at), undefined);
    };
    declines([`--proxy=${proxy}`, '--cluster=other'], now); // no cache for that cluster
    declines([`--proxy=${proxy}`, '--cluster', 'prod'], now); // flags it does not parse
    declines([`--proxy=${proxy}`, '--cluster=prod', '--debug'], now);
    declines(['--proxy=127.0.0.1:9999', '--cluster=prod'], now); // another profile
    const late = Date.parse(expires) - 59_000; // less than a minute left
    declines([`--proxy=${proxy}`, '--cluster=prod'], late);
    await kubeCredential(profile, 'prod', async () => ({ cert_pem: 'NEW', expires }), late);
    writeFileSync(join(dir, 'tls.pem'), 'LOGIN CERT 2'); // a new login
    declines([`--proxy=${proxy}`, '--cluster=prod'], now);
    await kubeCredential(
      { ...profile, tlsCert: 'LOGIN CERT 2' },
      'prod',
      async () => {
        issued++;
        return { cert_pem: 'KUBE CERT 2', expires };
      },
      now,
    );
    assert.equal(issued, 2, 'the full command also refused the stale cache');
    assert.match(
      cachedKubeCredentials([`--proxy=${proxy}`, '--cluster=prod'], env, now) ?? '',
      /KUBE CERT 2/,
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
