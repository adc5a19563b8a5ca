/**
 * The `jwt` CA and app certificates: tokens verified with `jose` against the JWKS the proxy
 * publishes (tampered, expired, other-audience and other-key tokens refused), app certificates
 * carrying the caller's identity, device and app route, never outliving the caller's certificate.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { isWardenError, parseIdentityFromCertificate } from '@warden/api';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { CertAuthorities } from './authorities';

const T0 = Date.UTC(2026, 0, 1);

async function setup() {
  const clock = new FakeClock(T0);
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
  return { clock, backend, cas };
}

const device = { deviceId: 'd-1', assetTag: 'ek:abc', credentialId: 'c-1' };

test('app JWTs verify against the JWKS with jose: claims, audience, issuer, device', async () => {
  const { backend, cas } = await setup();
  try {
    const jwks = cas.jwks();
    assert.equal(jwks.keys.length, 1);
    assert.deepEqual(Object.keys(jwks.keys[0]!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.deepEqual(cas.publicView('jwt').spec.jwt_public_keys, jwks.keys);
    const token = await cas.signAppJwt({
      user: 'alice',
      roles: ['access'],
      traits: { logins: ['alice'] },
      device,
      audience: 'http://127.0.0.1:3000',
      expires: new Date(T0 + 60_000),
      now: T0,
    });
    assert.equal(decodeProtectedHeader(token).kid, jwks.keys[0]!.kid);
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: 'example',
      audience: 'http://127.0.0.1:3000',
      currentDate: new Date(T0 + 1000),
      algorithms: ['ES256'],
    });
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.username, 'alice');
    assert.deepEqual(payload.roles, ['access']);
    assert.deepEqual(payload.traits, { logins: ['alice'] });
    assert.deepEqual(payload.device, { id: 'd-1', asset_tag: 'ek:abc', credential_id: 'c-1' });
    assert.equal(payload.iat, T0 / 1000);
    assert.equal(payload.exp, T0 / 1000 + 60);

    // Refused: another audience, after expiry, tampered payload, signed by another key.
    const verify = (t: string, opts: { audience?: string; at?: number } = {}) =>
      jwtVerify(t, createLocalJWKSet(jwks), {
        issuer: 'example',
        audience: opts.audience ?? 'http://127.0.0.1:3000',
        currentDate: new Date(opts.at ?? T0 + 1000),
      });
    await assert.rejects(verify(token, { audience: 'http://other:3000' }), /aud/);
    await assert.rejects(verify(token, { at: T0 + 120_000 }), /exp/);
    const [h, p, sig] = token.split('.');
    const forged = JSON.parse(Buffer.from(p!, 'base64url').toString());
    forged.username = 'root';
    await assert.rejects(
      verify(`${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${sig}`),
      /signature/,
    );
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const foreign = await new SignJWT({ username: 'alice' })
      .setProtectedHeader({ alg: 'ES256', kid: jwks.keys[0]!.kid })
      .setIssuer('example')
      .setAudience('http://127.0.0.1:3000')
      .setExpirationTime(T0 / 1000 + 60)
      .sign(other);
    await assert.rejects(verify(foreign), /signature/);

    // A token without a device has no device claim.
    const plain = await cas.signAppJwt({
      user: 'bob',
      roles: [],
      traits: {},
      audience: 'http://127.0.0.1:3000',
      expires: new Date(T0 + 60_000),
      now: T0,
    });
    const { payload: p2 } = await verify(plain);
    assert.equal(p2.device, undefined);
    await assert.rejects(
      cas.signAppJwt({ user: 'bob', roles: [], traits: {}, audience: 'x', expires: new Date(T0), now: T0 }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  } finally {
    await backend.close();
  }
});

test('the jwt key survives a restart (same kid) and is never printed', async () => {
  const { clock, backend, cas } = await setup();
  try {
    const again = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    assert.deepEqual(again.jwks(), cas.jwks());
    const stored = (await backend.get('/authorities/jwt'))!.value;
    assert.match(stored, /BEGIN PRIVATE KEY/);
    assert.doesNotMatch(JSON.stringify(cas.publicViews()), /PRIVATE/);
  } finally {
    await backend.close();
  }
});

test('app certificates: identity, device and route of the caller, bounded by the caller certificate', async () => {
  const { backend, cas } = await setup();
  try {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const route = { app: 'grafana', publicAddr: 'grafana.example.com', sessionId: 's-1' };
    const notAfter = new Date(T0 + 3600_000 + 500);
    const { certPem, notAfter: got } = await cas.issueAppCert({
      identity: {
        user: 'alice',
        roles: ['access'],
        logins: ['root'],
        traits: { a: ['b'] },
        device,
        app: route,
      },
      publicKey,
      notAfter,
      now: T0,
    });
    assert.equal(got.getTime(), T0 + 3600_000);
    const id = cas.verifyUserTlsCert(certPem, T0 + 1000);
    assert.equal(id.user, 'alice');
    assert.deepEqual(id.logins, [], 'app certificates carry no logins');
    assert.deepEqual(id.device, device);
    assert.deepEqual(id.app, route);
    assert.deepEqual(parseIdentityFromCertificate(certPem).app, route);
    assert.equal(new Date(new X509Certificate(certPem).validTo).getTime(), T0 + 3600_000);
    await assert.rejects(
      cas.issueAppCert({
        identity: { user: 'alice', roles: [], logins: [], traits: {}, app: route },
        publicKey,
        notAfter: new Date(T0 - 1),
        now: T0,
      }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  } finally {
    await backend.close();
  }
});
