import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createServer, type TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { p256KeyPair } from '../../../../test/support/p256-keys';
import type { LoadedProfile } from '../profile';
import { openTunnel } from './tunnel';

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** A self-signed P-256 certificate (its own CA) for 127.0.0.1, and its key. */
async function selfSigned(cn: string): Promise<{ certPem: string; keyPem: string }> {
  const { pair, keys } = await p256KeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${cn}`,
      keys,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
      ],
    },
    webcrypto as never,
  );
  return {
    certPem: cert.toString('pem'),
    keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

test('tunnels reuse one TLS context and resume the TLS session; the proxy still sees each connection’s certificate', async () => {
  const server = await selfSigned('proxy');
  const alice = await selfSigned('alice');
  const bob = await selfSigned('bob');
  const seen: { resumed: boolean; authorized: boolean; cn: string }[] = [];
  const tls = createServer(
    {
      cert: server.certPem,
      key: server.keyPem,
      ca: [alice.certPem, bob.certPem],
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ['test/1'],
    },
    (socket: TLSSocket) => {
      seen.push({
        resumed: socket.isSessionReused(),
        authorized: socket.authorized,
        cn: String(socket.getPeerCertificate().subject?.CN ?? ''),
      });
      socket.once('data', () => {
        socket.write('{"ok":true,"x":1}\n');
        socket.on('data', (c) => socket.write(c));
      });
    },
  );
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  const proxy = `127.0.0.1:${(tls.address() as AddressInfo).port}`;
  const profile = (who: { certPem: string; keyPem: string }) =>
    ({
      proxy,
      insecure: false,
      hostCaPems: [server.certPem],
      tlsCert: who.certPem,
      keyPem: who.keyPem,
    }) as unknown as LoadedProfile;
  const roundTrip = async (who: { certPem: string; keyPem: string }) => {
    const { stream, info } = await openTunnel<number>(profile(who), 'test/1', { hello: 1 }, 'x');
    assert.equal(info, 1);
    stream.write('ping');
    const echoed = new Promise<string>((r) => stream.once('data', (c: Buffer) => r(c.toString())));
    stream.resume();
    assert.equal(await echoed, 'ping');
    // TLS 1.3 tickets come after the handshake: wait for the close so the next dial has one.
    await new Promise<void>((r) => {
      stream.once('close', () => r());
      stream.end();
    });
  };
  try {
    await roundTrip(alice);
    await roundTrip(alice);
    await roundTrip(bob);
    assert.deepEqual(
      seen.map((s) => [s.cn, s.authorized]),
      [
        ['alice', true],
        ['alice', true],
        ['bob', true],
      ],
    );
    assert.equal(seen[0]!.resumed, false);
    assert.equal(seen[1]!.resumed, true, 'the second tunnel resumes the first one’s TLS session');
    assert.equal(seen[2]!.resumed, false, 'another certificate never resumes alice’s session');
  } finally {
    await new Promise((r) => tls.close(r));
  }
});

/** The two relays with a connection made ahead: what each asks the proxy, and how it is started. */
const relays = {
  'db tunnel': {
    alpn: 'warden-db/1',
    answer: '{"ok":true,"db":{"name":"orders","protocol":"postgres","labels":{}}}\n',
    request: '{"db":"orders","db_user":"alice"}',
    start: async (profile: LoadedProfile) => {
      const { startDbTunnel } = await import('../db/tunnel');
      return startDbTunnel({ profile, db: 'orders', dbUser: 'alice', spareIdleMs: 300 });
    },
  },
  'wsh proxy app': {
    alpn: 'warden-app/1',
    answer: '{"ok":true,"app":{"name":"grafana","public_addr":"grafana.localhost","labels":{}}}\n',
    request: '{"app":"grafana"}',
    start: async (profile: LoadedProfile) => {
      const { startAppProxy } = await import('../app/proxy');
      // The app certificate stands in the profile's place on app tunnels: here the same one.
      const login = { name: 'grafana', certPem: profile.tlsCert } as never;
      return startAppProxy({ profile, login, spareIdleMs: 300 });
    },
  },
} as const;

for (const [kind, relay] of Object.entries(relays))
  test(`${kind}: a connection is made ahead for the next client; the request (and the proxy’s decision) waits for the client`, async () => {
    const { connect: netConnect } = await import('node:net');
    const server = await selfSigned('proxy');
    const alice = await selfSigned('alice');
    /** Per TLS connection: whether a request came, in order of the handshakes. */
    const conns: { requests: string[]; closed: boolean }[] = [];
    let refuse = false;
    const tls = createServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: [alice.certPem],
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: [relay.alpn],
      },
      (socket: TLSSocket) => {
        const c = { requests: [] as string[], closed: false };
        conns.push(c);
        socket.on('close', () => {
          c.closed = true;
        });
        socket.once('data', (line: Buffer) => {
          c.requests.push(line.toString().trim());
          // Decided when the request comes, as the proxy does (identify, locks).
          if (refuse) {
            socket.end('{"ok":false,"code":"WARDEN_ERR_LOCKED","message":"locked"}\n');
            return;
          }
          socket.write(relay.answer);
          socket.on('data', (d) => socket.write(d));
        });
      },
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const profile = {
      proxy: `127.0.0.1:${(tls.address() as AddressInfo).port}`,
      insecure: false,
      hostCaPems: [server.certPem],
      tlsCert: alice.certPem,
      keyPem: alice.keyPem,
    } as unknown as LoadedProfile;
    const tunnel = await relay.start(profile);
    const echo = async (text: string) => {
      const s = netConnect({ host: '127.0.0.1', port: tunnel.port });
      s.on('error', () => undefined);
      const got = new Promise<string>((r) => {
        s.once('data', (d: Buffer) => r(d.toString()));
        s.once('close', () => r('(closed)'));
      });
      s.write(text);
      const out = await got;
      s.destroy();
      return out;
    };
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(ok());
    };
    try {
      assert.equal(await echo('one'), 'one');
      await until(() => conns.length === 2);
      const spare = conns.find((c) => c.requests.length === 0);
      assert.ok(spare, 'the spare has its handshake done and no request yet');
      assert.equal(await echo('two'), 'two');
      assert.deepEqual(spare.requests, [relay.request], 'the second client used the spare');
      await until(() => conns.length === 3);
      // A refusal decided when the spare is used (e.g. a lock that came after it was made).
      refuse = true;
      assert.equal(await echo('three'), '(closed)');
      assert.equal(conns[2]!.requests.length, 1, 'the next spare, refused on its own request');
      refuse = false;
      // The next spare is made once a connection's request is answered, refused ones included.
      await until(() => conns.length === 4);
      // Unused spares are closed after their idle time and not replaced until the next client.
      await until(() => conns.every((c) => c.closed));
      const count = conns.length;
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(conns.length, count, 'no new spare while idle');
      assert.equal(await echo('four'), 'four');
    } finally {
      await tunnel.close();
      await new Promise((r) => tls.close(r));
    }
  });
