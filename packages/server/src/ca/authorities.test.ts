import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { isWardenError, parseAuthorizedKey, sshFingerprint, validateResourceOfKind } from '@warden/api';
import { needs, run, tempDir } from '../../../../test/support/system-tools';
import type { Backend } from '../backend';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { AUTHORITIES_PREFIX, CertAuthorities } from './authorities';
import { PrivateKey } from './private-key';

const sshKeygen = needs('ssh-keygen');
const openssl = needs('openssl');

function setup() {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  return { clock, backend };
}

test('first start creates the user, host, db, openssh and jwt CAs; the next start loads the same ones', async () => {
  const { clock, backend } = setup();
  try {
    const first = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    assert.deepEqual(first.types(), ['user', 'host', 'db', 'openssh', 'jwt']);
    const keys = (await backend.range(AUTHORITIES_PREFIX)).items.map((i) => i.key);
    assert.deepEqual(keys, [
      '/authorities/db',
      '/authorities/host',
      '/authorities/jwt',
      '/authorities/openssh',
      '/authorities/user',
    ]);
    const second = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    assert.deepEqual(second.publicViews(), first.publicViews());
    assert.equal(second.caPin('host'), first.caPin('host'));
    assert.notEqual(first.caPin('user'), first.caPin('host'));
    assert.notEqual(first.exportUserLine().split(' ')[1], first.exportHostLine().split(' ')[3]);
  } finally {
    await backend.close();
  }
});

test('two auth servers starting at once end up with the same CAs', async () => {
  const { clock, backend } = setup();
  try {
    // Hold each create until both servers have tried it, so both generated keys and race.
    const waiting = new Map<string, () => void>();
    const results: string[] = [];
    const create: Backend['create'] = async (key, value, opts) => {
      const other = waiting.get(key);
      if (other) other();
      else await new Promise<void>((resolve) => waiting.set(key, resolve));
      try {
        const item = await backend.create(key, value, opts);
        results.push(`${key} created`);
        return item;
      } catch (e) {
        results.push(`${key} ${(e as { code?: string }).code}`);
        throw e;
      }
    };
    const racing = new Proxy(backend, {
      get: (target, prop) => {
        if (prop === 'create') return create;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const [a, b] = await Promise.all([
      CertAuthorities.init({ backend: racing, clusterName: 'example', clock }),
      CertAuthorities.init({ backend: racing, clusterName: 'example', clock }),
    ]);
    assert.deepEqual(results.sort(), [
      '/authorities/db WARDEN_ERR_ALREADY_EXISTS',
      '/authorities/db created',
      '/authorities/host WARDEN_ERR_ALREADY_EXISTS',
      '/authorities/host created',
      '/authorities/jwt WARDEN_ERR_ALREADY_EXISTS',
      '/authorities/jwt created',
      '/authorities/openssh WARDEN_ERR_ALREADY_EXISTS',
      '/authorities/openssh created',
      '/authorities/user WARDEN_ERR_ALREADY_EXISTS',
      '/authorities/user created',
    ]);
    assert.deepEqual(a.publicViews(), b.publicViews());
    for (const item of (await backend.range(AUTHORITIES_PREFIX)).items) {
      assert.equal(item.modRev, item.createRev, `${item.key} was written once`);
    }
  } finally {
    await backend.close();
  }
});

test('adding a CA type later creates only that one', async () => {
  const { clock, backend } = setup();
  try {
    const first = await CertAuthorities.init({
      backend,
      clusterName: 'example',
      clock,
      types: ['user', 'host'],
    });
    const more = await CertAuthorities.init({
      backend,
      clusterName: 'example',
      clock,
      types: ['user', 'host', 'db', 'openssh'],
    });
    assert.deepEqual(more.publicView('user'), first.publicView('user'));
    assert.equal(more.publicView('db').spec.ssh_public_keys.length, 0);
    assert.equal(more.publicView('db').spec.tls_certs.length, 1);
    assert.equal(more.publicView('openssh').spec.tls_certs.length, 0);
    assert.match(more.exportUserLine('openssh'), /^ssh-ed25519 AAAA\S+ type=openssh$/);
    assert.notEqual(more.exportUserLine('openssh'), more.exportUserLine('user'));
    assert.throws(
      () => first.publicView('db'),
      (e) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'),
    );
  } finally {
    await backend.close();
  }
});

test('a stored CA of another cluster, or a damaged one, stops the start', async () => {
  const { clock, backend } = setup();
  try {
    await CertAuthorities.init({ backend, clusterName: 'example', clock });
    await assert.rejects(
      CertAuthorities.init({ backend, clusterName: 'other', clock }),
      (e) =>
        isWardenError(e, 'WARDEN_ERR_BAD_CONFIG') && /belong to cluster "example"/.test((e as Error).message),
    );
    const user = (await backend.get('/authorities/user'))!;
    const stored = JSON.parse(user.value);
    const cases: [string, unknown][] = [
      ['not json', '{'],
      ['missing tls', { ...stored, tls: undefined }],
      ['rsa-less garbage key', { ...stored, ssh: { private_key: 'nope' } }],
      ['cert for another key', { ...stored, tls: { ...stored.tls, private_key: stored.ssh.private_key } }],
      ['extra field', { ...stored, note: 1 }],
    ];
    for (const [what, value] of cases) {
      await backend.put('/authorities/user', typeof value === 'string' ? value : JSON.stringify(value));
      await assert.rejects(
        CertAuthorities.init({ backend, clusterName: 'example', clock }),
        (e) => isWardenError(e, 'WARDEN_ERR_BAD_CONFIG') && !(e as Error).message.includes('PRIVATE KEY'),
        what,
      );
    }
    await assert.rejects(CertAuthorities.init({ backend, clusterName: 'bad name', clock }), (e) =>
      isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'),
    );
  } finally {
    await backend.close();
  }
});

test('the public view is a valid cert_authority resource with only public parts', async () => {
  const { clock, backend } = setup();
  try {
    const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    const view = cas.publicView('user');
    assert.deepEqual(validateResourceOfKind('cert_authority', view), view);
    assert.equal(view.kind, 'cert_authority');
    assert.equal(view.version, 'v2');
    assert.equal(view.metadata.name, 'user');
    assert.equal(view.spec.type, 'user');
    assert.equal(view.spec.cluster, 'example');
    assert.equal(view.spec.ssh_public_keys.length, 1);
    assert.match(view.spec.tls_certs[0]!, /^-----BEGIN CERTIFICATE-----\n/);
    assert.deepEqual(view.spec.tls_certs, cas.tlsCertPems('user'));
  } finally {
    await backend.close();
  }
});

test('private keys never show in JSON, inspect or string forms', async () => {
  const { clock, backend } = setup();
  try {
    const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    const host = await cas.issueHostTlsCert({ dnsNames: ['proxy.example'] });
    const secrets = (await backend.range(AUTHORITIES_PREFIX)).items.flatMap((i) => {
      const s = JSON.parse(i.value);
      return [s.ssh?.private_key, s.tls?.private_key].filter(Boolean) as string[];
    });
    secrets.push(host.privateKey!.toPkcs8Pem());
    assert.equal(secrets.length, 7);
    const shown = [
      JSON.stringify(cas),
      inspect(cas, { depth: 10, showHidden: true }),
      String(cas),
      JSON.stringify(cas.publicViews()),
      inspect(cas.publicViews(), { depth: 10 }),
      JSON.stringify(host),
      inspect(host, { depth: 10, showHidden: true }),
      `${host.privateKey}`,
    ].join('\n');
    assert.ok(!shown.includes('PRIVATE KEY'), shown);
    for (const pem of secrets) {
      const body = pem.split('\n')[1]!;
      assert.ok(!shown.includes(body), 'a private key body leaked');
    }
    assert.match(shown, /\[PrivateKey ecdsa-p256 redacted\]/);
    assert.equal(
      JSON.stringify({ k: PrivateKey.generate('ed25519') }),
      '{"k":"[PrivateKey ed25519 redacted]"}',
    );
  } finally {
    await backend.close();
  }
});

test('export lines: TrustedUserCAKeys and known_hosts @cert-authority', sshKeygen, async () => {
  const { clock, backend } = setup();
  const tmp = tempDir();
  try {
    const cas = await CertAuthorities.init({ backend, clusterName: 'example.com', clock });
    const userLine = cas.exportUserLine();
    assert.match(userLine, /^ssh-ed25519 AAAA\S+ type=user$/);
    const hostLine = cas.exportHostLine();
    assert.match(hostLine, /^@cert-authority \*\.example\.com,example\.com ssh-ed25519 AAAA\S+ type=host$/);
    assert.equal(cas.exportHostLine('other'), hostLine.replace('*.example.com,example.com', '*.other,other'));
    assert.throws(
      () => cas.exportHostLine('a,b'),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );

    // ssh-keygen reads both files and agrees on the fingerprints.
    writeFileSync(tmp.path('ca.pub'), `${userLine}\n`);
    const l = run('ssh-keygen', ['-l', '-f', tmp.path('ca.pub')]);
    assert.equal(l.status, 0, l.stderr);
    assert.equal(
      l.stdout.trim(),
      `256 ${sshFingerprint(parseAuthorizedKey(userLine).key)} type=user (ED25519)`,
    );
    writeFileSync(tmp.path('known_hosts'), `${hostLine}\n`);
    const f = run('ssh-keygen', ['-F', 'node1.example.com', '-f', tmp.path('known_hosts')]);
    assert.equal(f.status, 0, `${f.stdout}${f.stderr}`);
    assert.ok(f.stdout.includes(hostLine), f.stdout);
    assert.notEqual(run('ssh-keygen', ['-F', 'node1.example.org', '-f', tmp.path('known_hosts')]).status, 0);
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('the CA certificates are self-signed CAs openssl accepts', openssl, async () => {
  const { clock, backend } = setup();
  const tmp = tempDir();
  try {
    const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    for (const type of ['user', 'host', 'db'] as const) {
      const file = tmp.path(`${type}.pem`);
      writeFileSync(file, cas.tlsCertPems(type)[0]!);
      const attime = String(Math.floor(clock.now() / 1000));
      const v = run('openssl', ['verify', '-attime', attime, '-CAfile', file, file]);
      assert.equal(v.stdout.trim(), `${file}: OK`, v.stderr);
      const t = run('openssl', ['x509', '-noout', '-text', '-in', file]);
      assert.match(t.stdout, new RegExp(`Subject: CN = example, O = example, OU = warden ${type} CA`));
      assert.match(t.stdout, /CA:TRUE, pathlen:0/);
      assert.match(t.stdout, /Certificate Sign, CRL Sign/);
      assert.match(t.stdout, /ASN1 OID: prime256v1/);
    }
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});
