/**
 * Issue 15's attacks, each against a real `warden start` (one process for the file): every
 * test performs the attack the security review found and checks that it is refused. One
 * test per item, named after it.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { rpc } from '@warden/api';
import { ProfileStore } from '@warden/client';
import {
  type Authenticator,
  addUserAndLogin,
  freePort,
  requireTool,
  runCli,
  selfSignedCert,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import { postRaw } from '../support/guess';

const PASSWORD = 'correct horse battery staple';
const ssh = requireTool('ssh');

describe('issue 15 attacks against a real warden', () => {
  let w: WardenProcess;
  let sshPort: number;
  let caDir: string;
  const home = (user: string) => join(w.dir, `home-${user}`);
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: { ...w.env, WARDEN_HOME: home(user) }, input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });

  const otps = new Map<string, Authenticator>();

  async function addUser(user: string, logins: string, roles = 'access'): Promise<void> {
    const { otp } = await addUserAndLogin(w, user, { roles, logins, home: home(user), password: PASSWORD });
    otps.set(user, otp);
  }

  /** POSTs raw bytes to an API route with `user`'s certificate: the status and the JSON answer. */
  async function rawPost(
    user: string,
    path: string,
    body: string,
    from?: { localAddress: string },
  ): Promise<{ status: number; json: unknown }> {
    const p = new ProfileStore(home(user)).require(w.proxy);
    const host = w.proxy.split(':')[0]!;
    const res = await postRaw(w.proxy, path, body, {
      ca: p.hostCaPems,
      ...(from ? { localAddress: from.localAddress } : { cert: p.tlsCert, key: p.keyPem }),
      servername: host,
    });
    return { status: res.status, json: res.json };
  }

  before(async () => {
    sshPort = await freePort();
    // The config file sets the authentication settings, with an EK CA (item 17).
    caDir = mkdtempSync(join(tmpdir(), 'warden-ekca-'));
    const ekCa = selfSignedCert({ dir: caDir, cn: 'Test EK CA', ca: true });
    w = await startWarden({
      configYaml: [
        'auth_service:',
        '  authentication:',
        '    second_factor: otp',
        '    device_trust:',
        '      mode: optional',
        `      ekcert_allowed_cas: [${ekCa.certFile}]`,
        'ssh_service:',
        `  listen_addr: 127.0.0.1:${sshPort}`,
        '  hostname: node-1',
        '  labels: { env: test }',
        '  login_grace_time: 2s',
        '  max_startups: 20',
        '  max_startups_per_source: 3',
        '',
      ].join('\n'),
      proxyLimitsYaml: '  handshake_timeout: 1s\n  header_timeout: 1s\n  request_timeout: 3s\n',
    });
    await addUser('alice', 'root');
    await addUser('ed', 'root', 'editor');
  });
  after(async () => {
    await w?.stop();
    rmSync(caDir, { recursive: true, force: true });
  });

  test('item 10: control characters in a lock message never reach the terminal', {
    skip: ssh.skip,
  }, async () => {
    // Clear the screen, retitle the terminal, and a C1 CSI: as typed by whoever made the lock.
    const evil = 'see \x1b]0;owned\x07\x1b[2J\r\nroot# \u009b31m';
    const lock = await wctl(['lock', '--user=alice', `--message=${evil}`, '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const stored = JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      spec: { message?: string };
    }[];
    assert.deepEqual(
      stored.map((l) => l.spec.message),
      ['see \\x1b]0;owned\\x07\\x1b[2J\\r\\nroot# \\x9b31m'],
    );
    const res = await wsh('alice', ['ssh', 'root@node-1', 'true']);
    assert.notEqual(res.code, 0);
    assert.doesNotMatch(res.stderr, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/u, JSON.stringify(res.stderr));
    assert.match(res.stderr, /is in force: see \\x1b\]0;owned\\x07\\x1b\[2J\\r\\nroot# \\x9b31m/);
    // A lock written as a resource gets the same treatment.
    const file = [
      'kind: lock',
      'version: v2',
      'metadata:',
      '  name: 0d4f7a52-3b8e-4c55-9a61-2f1e0c9b8a77',
      'spec:',
      '  target: { user: bob }',
      '  message: "bell\\a and \\e[5m"',
      '',
    ].join('\n');
    const created = await wctl(['create', '-'], file);
    assert.equal(created.code, 0, created.stderr);
    const all = JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      spec: { target: { user?: string }; message?: string };
    }[];
    assert.equal(all.find((l) => l.spec.target.user === 'bob')?.spec.message, 'bell\\x07 and \\x1b[5m');
    await wctl(['rm', 'lock/0d4f7a52-3b8e-4c55-9a61-2f1e0c9b8a77']);
    for (const l of JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      metadata: { name: string };
    }[])
      await wctl(['rm', `lock/${l.metadata.name}`]);
  });

  test('item 2: a 200 000-deep kind from a user without permissions is refused, never a 500', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const body = `{"resource":{"kind":${deep},"version":"v7","metadata":{"name":"x"},"spec":{}},"force":false}`;
    const nobody = await rawPost('alice', rpc.Routes.resources, body);
    assert.equal(nobody.status, 400, JSON.stringify(nobody.json));
    assert.deepEqual(nobody.json, {
      error: { code: 'WARDEN_ERR_BAD_PARAMETER', message: 'request body nests deeper than 64 levels' },
    });
    // Shallow but malformed: the user without write permissions is refused before validation.
    const bad = await rawPost(
      'alice',
      rpc.Routes.resources,
      JSON.stringify({ resource: { kind: [[['role']]], version: 'v7' }, force: false }),
    );
    assert.equal(bad.status, 403, JSON.stringify(bad.json));
    assert.match(
      (bad.json as { error: { message: string } }).error.message,
      /^access denied: user "alice" lacks permission "create"/,
    );
    const role = await rawPost(
      'alice',
      rpc.Routes.resources,
      JSON.stringify({
        resource: { kind: 'role', version: 'v7', metadata: { name: 'r' }, spec: { nonsense: 1 } },
        force: false,
      }),
    );
    assert.equal(role.status, 403, JSON.stringify(role.json));
    // An editor gets the validation message.
    const ed = await rawPost(
      'ed',
      rpc.Routes.resources,
      JSON.stringify({ resource: { kind: [[['role']]], version: 'v7' }, force: false }),
    );
    assert.equal(ed.status, 400, JSON.stringify(ed.json));
    // Resource files: deep YAML is refused by wctl with the reason, not a stack overflow.
    const file = join(w.dir, 'deep.yaml');
    writeFileSync(
      file,
      `kind: role\nversion: v7\nmetadata: { name: deep }\nspec: ${'['.repeat(5000)}${']'.repeat(5000)}\n`,
    );
    const yaml = await wctl(['create', file]);
    assert.equal(yaml.code, 1);
    assert.match(yaml.stderr, /nests deeper than 64 levels/);
    assert.doesNotMatch(yaml.stderr, /call stack/);
    // The server is still up.
    assert.equal((await wsh('alice', ['ls'])).code, 0);
  });

  /** Resolves with how long the server took to close `socket` (rejects after `maxMs`). */
  function closedWithin(socket: Socket, maxMs: number): Promise<number> {
    const start = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`the server kept the connection open for ${maxMs} ms`));
      }, maxMs);
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - start);
      });
    });
  }

  const [proxyHost, proxyPort] = [() => w.proxy.split(':')[0]!, () => Number(w.proxy.split(':')[1])];

  test('item 3: a TLS handshake that never starts is closed after handshake_timeout', async () => {
    const half = netConnect(proxyPort(), proxyHost());
    const ms = await closedWithin(half, 6000);
    assert.ok(ms >= 900, `closed after ${ms} ms`);
  });

  test('item 3: slowloris HTTPS headers are cut after header_timeout', async () => {
    const s = tlsConnect({
      host: proxyHost(),
      port: proxyPort(),
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write('GET /v1/ping HTTP/1.1\r\nHost: proxy\r\n');
    let answer = '';
    s.on('data', (d) => {
      answer += d;
    });
    const drip = setInterval(() => {
      if (!s.destroyed) s.write('X-Slow: a\r\n');
    }, 200);
    try {
      const ms = await closedWithin(s, 6000);
      assert.ok(ms >= 900, `closed after ${ms} ms`);
      assert.match(answer, /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(drip);
    }
  });

  test('item 3: an SSH connection that never authenticates is dropped after login_grace_time', async () => {
    const s = netConnect(sshPort, '127.0.0.1');
    let banner = '';
    s.on('data', (d) => {
      banner += d;
    });
    const ms = await closedWithin(s, 8000);
    assert.match(banner, /^SSH-2\.0-Warden/);
    assert.ok(ms >= 1900, `closed after ${ms} ms`);
  });

  test('item 3: at most max_startups_per_source unauthenticated SSH connections from one address', async () => {
    const open: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = netConnect(sshPort, '127.0.0.1');
        s.on('error', () => {});
        await new Promise<void>((r) => s.once('data', () => r()));
        open.push(s);
      }
      const fourth = netConnect(sshPort, '127.0.0.1');
      let got = '';
      fourth.on('data', (d) => {
        got += d;
      });
      await closedWithin(fourth, 1500);
      assert.equal(got, '', 'dropped before the SSH banner');
    } finally {
      for (const s of open) s.destroy();
    }
    // Slots are given back when connections close: a real login works.
    await new Promise((r) => setTimeout(r, 100));
    const res = await wsh('alice', ['ssh', 'root@node-1', 'echo', 'still-open']);
    assert.equal(res.stdout, 'still-open\n', res.stderr);
  });

  test('item 17: wctl create -f cap.yaml says what it drops and that the config file wins at the next start', async () => {
    const before = JSON.parse((await wctl(['get', 'cluster_auth_preference', '--format=json'])).stdout) as {
      spec: { device_trust: { ekcert_allowed_cas?: string[] } };
    };
    assert.equal(before.spec.device_trust.ekcert_allowed_cas?.length, 1);
    const file = join(w.dir, 'cap.yaml');
    writeFileSync(
      file,
      'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\nspec:\n  second_factor: otp\n  device_trust:\n    mode: optional\n',
    );
    const res = await wctl(['create', '-f', file]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(
      res.stderr,
      /WARNING: this change removes 1 of the 1 CA certificate\(s\) in spec\.device_trust\.ekcert_allowed_cas; EK certificates from them are no longer trusted and enrollment no longer requires an EK certificate/,
    );
    assert.match(
      res.stderr,
      /WARNING: the config file sets auth_service\.authentication: this change lasts until warden restarts, when the file replaces it; edit the file to keep it/,
    );
  });

  test('item 13: five bad passwords from one address lock out that address, not the user', async () => {
    await addUser('victim', 'root');
    const p = new ProfileStore(home('victim')).require(w.proxy);
    const guess = (password: string) =>
      rawPost(
        'victim',
        rpc.Routes.login,
        JSON.stringify({
          user: 'victim',
          password,
          otp_code: '000000',
          ssh_public_key: p.sshPublicKey,
          tls_public_key: createPublicKey(p.keyPem).export({ type: 'spki', format: 'pem' }).toString(),
        }),
        { localAddress: '127.0.0.2' },
      );
    for (let i = 0; i < 5; i++) assert.equal((await guess(`wrong ${i}`)).status, 401);
    const sixth = await guess('wrong 6');
    assert.equal(sixth.status, 429, JSON.stringify(sixth.json));
    assert.match(
      (sixth.json as { error: { message: string } }).error.message,
      /too many failed login attempts for user "victim" from 127\.0\.0\.2/,
    );
    // The user, from their own address, still logs in.
    const l = await wsh(
      'victim',
      ['login', `--proxy=${w.proxy}`, '--user=victim'],
      `${PASSWORD}\n${await otps.get('victim')!.code()}\n`,
    );
    assert.equal(l.code, 0, l.stderr);
  });
});
