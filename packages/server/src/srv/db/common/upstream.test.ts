/**
 * UpstreamCredentials: one TLS context per (db user certificate, trusted CAs), shared by the
 * connections that use it and rebuilt when the certificate is renewed or the CAs change; and
 * a context that really authenticates (a TLS server requiring a client certificate from the
 * db CA sees CN = the db user).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { test } from 'node:test';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { DbResource } from '@warden/api';
import { MemoryBackend } from '../../../backend';
import { CertAuthorities } from '../../../ca';
import { FakeClock } from '../../../clock';
import { dbCertIssuer, UpstreamCredentials, upgrade } from './upstream';

const TTL = 60 * 60 * 1000;

function db(name: string, uri: string, caCert?: string): DbResource {
  return {
    kind: 'db',
    version: 'v3',
    metadata: { name },
    spec: { protocol: 'postgres', uri, ...(caCert ? { ca_cert: caCert } : {}) },
  };
}

async function setup() {
  const clock = new FakeClock(Date.now());
  const backend = new MemoryBackend({ clock });
  const cas = await CertAuthorities.init({ backend, clusterName: 'unit', clock });
  let issued = 0;
  const issuer = dbCertIssuer(cas);
  const counting = {
    ...issuer,
    issueClientCert: (req: Parameters<typeof issuer.issueClientCert>[0]) => {
      issued++;
      return issuer.issueClientCert(req);
    },
  };
  const creds = new UpstreamCredentials({ issuer: counting, clock, ttlMs: TTL });
  return { clock, cas, creds, issued: () => issued, close: () => backend.close() };
}

test('one TLS context per db user and CAs, reused by every connection', async () => {
  const { creds, issued, close } = await setup();
  try {
    const orders = db('orders', '127.0.0.1:5432');
    const a = await creds.tlsOptions(orders, 'alice');
    const b = await creds.tlsOptions(orders, 'alice');
    const c = await creds.tlsOptions(db('shop', 'db.example:5432'), 'alice');
    assert.ok(a.secureContext);
    assert.equal(b.secureContext, a.secureContext);
    // Another database trusting the same CA, same certificate: the same context.
    assert.equal(c.secureContext, a.secureContext);
    assert.equal(c.servername, 'db.example');
    assert.equal(a.servername, undefined);
    assert.equal(a.rejectUnauthorized, true);
    // No key material in the options themselves (the context holds it).
    assert.equal(a.key, undefined);
    assert.equal(creds.contextsBuilt, 1);
    assert.equal(issued(), 1);

    const bob = await creds.tlsOptions(orders, 'bob');
    assert.notEqual(bob.secureContext, a.secureContext);
    assert.equal(creds.contextsBuilt, 2);
  } finally {
    await close();
  }
});

test('a resource with its own CA gets its own context; a renewed certificate a new one', async () => {
  const { clock, cas, creds, issued, close } = await setup();
  try {
    const orders = db('orders', '127.0.0.1:5432');
    const a = await creds.tlsOptions(orders, 'alice');
    const own = await creds.tlsOptions(db('legacy', '127.0.0.1:3306', cas.tlsCertPems('user')[0]), 'alice');
    assert.notEqual(own.secureContext, a.secureContext);
    assert.equal(creds.contextsBuilt, 2);
    // Still fresh: same context.
    clock.advance(TTL / 2);
    assert.equal((await creds.tlsOptions(orders, 'alice')).secureContext, a.secureContext);
    // Less than a quarter of its life left: a new certificate, so a new context.
    clock.advance(TTL / 4 + 1000);
    const renewed = await creds.tlsOptions(orders, 'alice');
    assert.notEqual(renewed.secureContext, a.secureContext);
    assert.equal(issued(), 2);
    assert.equal((await creds.tlsOptions(orders, 'alice')).secureContext, renewed.secureContext);
  } finally {
    await close();
  }
});

/**
 * A database stand-in on 127.0.0.1 with a db-CA server certificate that asks for db-CA client
 * certificates and answers each connection with `reply` (then ends it).
 */
async function dbServer(cas: CertAuthorities, reply: (s: TLSSocket) => string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const { certPem } = await cas.issueDbServerCert({ ipAddresses: ['127.0.0.1'], publicKey });
  const server = createServer(
    {
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: certPem,
      ca: cas.tlsCertPems('db'),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (s) => s.end(reply(s)),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** Everything `sock` receives until the other side ends it. */
async function readToEnd(sock: TLSSocket): Promise<string> {
  let got = '';
  sock.on('data', (d) => {
    got += d;
  });
  await once(sock, 'end');
  sock.destroy();
  return got;
}

test('the shared context logs in: the server sees the db user’s certificate, twice over', async () => {
  const { cas, creds, close } = await setup();
  const seen: unknown[] = [];
  const { server, port } = await dbServer(cas, (s) => String(s.getPeerCertificate().subject?.CN));
  try {
    const target = db('orders', `127.0.0.1:${port}`);
    for (let i = 0; i < 2; i++) {
      const options = await creds.tlsOptions(target, 'reporting');
      seen.push(await readToEnd(connect({ ...options, port })));
    }
    assert.deepEqual(seen, ['reporting', 'reporting']);
    assert.equal(creds.contextsBuilt, 1);
  } finally {
    server.close();
    await close();
  }
});

test('the database’s TLS session is resumed by the next connection of the same context', async () => {
  const { cas, creds, close } = await setup();
  // The client certificate is still known on a resumed session (what the database checks).
  const { server, port } = await dbServer(
    cas,
    (s) => `${String(s.getPeerCertificate().subject?.CN)} ${s.isSessionReused()}`,
  );
  try {
    const target = db('shop', `127.0.0.1:${port}`);
    /** What the database says to a TLS connection as `dbUser`: its CN and whether TLS resumed. */
    const answer = async (dbUser: string) => {
      const tcp = netConnect({ host: '127.0.0.1', port });
      await once(tcp, 'connect');
      return readToEnd(await upgrade(tcp, await creds.tlsOptions(target, dbUser), target));
    };
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) seen.push(await answer('reporting'));
    assert.deepEqual(seen, ['reporting false', 'reporting true', 'reporting true']);
    // Another db user has its own context: no session to resume.
    assert.equal(await answer('alice'), 'alice false');
  } finally {
    server.close();
    await close();
  }
});
