// Fuzz tests for the SSH parsers: mutated and random input must either parse or throw
// WARDEN_ERR_BAD_CERTIFICATE (never a RangeError, TypeError or crash), and a mutated
// certificate must never verify. Seeded, so a failure can be replayed.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { isWardenError } from '../errors';
import {
  decodeSshCertificate,
  parseSshCertificate,
  signSshCertificate,
  verifySshCertificate,
} from './ssh-cert';
import { encodeSshPublicKey, parseAuthorizedKey, parseSshPublicKey } from './ssh-key';

const SEED = Number(process.env.WARDEN_FUZZ_SEED ?? 0x5eed);
const ROUNDS = 3000;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(input: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(input);
  const int = (n: number) => Math.floor(rand() * n);
  switch (int(6)) {
    case 0: // flip a bit
      {
        const at = int(b.length);
        b[at] = (b[at] ?? 0) ^ (1 << int(8));
        return b;
      }
    case 1: // truncate
      return b.subarray(0, int(b.length));
    case 2: // overwrite a 4-byte window with a length-like value
      {
        const at = int(Math.max(1, b.length - 4));
        const values = [0, 1, 0x7fffffff, 0xffffffff, b.length, int(256)];
        b.writeUInt32BE(values[int(values.length)]!, at);
        return b;
      }
    case 3: // insert random bytes
      {
        const at = int(b.length);
        const extra = Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256)));
        return Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
      }
    case 4: // delete a range
      {
        const at = int(b.length);
        return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(16))]);
      }
    default: // random bytes
      return Buffer.from(Array.from({ length: int(300) }, () => int(256)));
  }
}

function expectTypedOrOk(fn: () => unknown, what: string): unknown {
  try {
    return fn();
  } catch (e) {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'), `${what}: untyped error ${String(e)}`);
    return undefined;
  }
}

test(`fuzz: mutated certificates never crash the parser and never verify (seed ${SEED})`, () => {
  const rand = prng(SEED);
  const ca = generateKeyPairSync('ed25519');
  const certs = [
    generateKeyPairSync('ed25519').publicKey,
    generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  ].map((publicKey) =>
    signSshCertificate(
      {
        publicKey,
        type: 'user',
        keyId: 'alice',
        validPrincipals: ['root'],
        validAfter: 0n,
        validBefore: 4_000_000_000n,
        extensions: { 'permit-pty': '', 'warden-roles@wardenproject.org': '["a"]' },
      },
      ca.privateKey,
    ),
  );
  let parsedCount = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const original = certs[i % certs.length]!;
    const blob = mutate(original.blob, rand);
    const cert = expectTypedOrOk(() => decodeSshCertificate(blob), `round ${i}`);
    if (cert === undefined) continue;
    parsedCount++;
    const verified = expectTypedOrOk(
      () => verifySshCertificate(cert as never, [ca.publicKey], { now: 1_767_225_600_000, type: 'user' }),
      `verify round ${i}`,
    );
    if (verified !== undefined)
      assert.deepEqual(blob, original.blob, `round ${i}: a changed certificate verified`);
    // The line parser sees the same bytes through base64.
    expectTypedOrOk(
      () => parseSshCertificate(`${original.algorithm} ${blob.toString('base64')}`),
      `line ${i}`,
    );
  }
  // Some mutations (bit flips in the nonce or signature) still parse; make sure we exercised verify.
  assert.ok(parsedCount > 50, `only ${parsedCount} mutated certificates parsed`);
});

test(`fuzz: public key blobs and lines (seed ${SEED})`, () => {
  const rand = prng(SEED + 1);
  const keys = [
    encodeSshPublicKey(generateKeyPairSync('ed25519').publicKey),
    encodeSshPublicKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey),
  ];
  for (let i = 0; i < ROUNDS; i++) {
    const blob = mutate(keys[i % keys.length]!, rand);
    expectTypedOrOk(() => parseSshPublicKey(blob), `blob ${i}`);
    const text = blob.toString('latin1');
    expectTypedOrOk(() => parseAuthorizedKey(text), `text ${i}`);
    expectTypedOrOk(() => parseAuthorizedKey(`ssh-ed25519 ${blob.toString('base64')}`), `line ${i}`);
  }
});
