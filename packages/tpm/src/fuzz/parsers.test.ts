/**
 * Property and fuzz tests for every parser of the package: random structures round-trip;
 * random, truncated, bit-flipped and oversized inputs give a TpmError every time (never
 * another exception, a hang or an allocation beyond the input). Seeded: a failure prints
 * the seed that reproduces it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Rng,
  randomAttest,
  randomCreationData,
  randomNvPublic,
  randomPcrSelections,
  randomPublic,
  randomSignature,
} from '../../../../test/support/tpm-random';
import { isTpmError } from '../errors';
import {
  decodeAttest,
  decodeCreationData,
  decodeDigests,
  decodeIdObject,
  decodeNvPublic,
  decodePcrSelections,
  decodePublic,
  decodePublic2b,
  decodeSignature,
  encodeAttest,
  encodeCreationData,
  encodeDigests,
  encodeIdObject,
  encodeNvPublic,
  encodePcrSelections,
  encodePublic,
  encodePublic2b,
  encodeSignature,
} from '../marshal';
import { decodeCredentialFile, encodeCredentialFile } from '../verify';

const ROUNDS = 300;

interface Case<T> {
  name: string;
  gen: (rng: Rng) => T;
  encode: (v: T) => Uint8Array;
  decode: (b: Uint8Array) => unknown;
  /** For the truncation/trailing-bytes checks: values whose encoding has no open-ended tail. */
  closed?: (rng: Rng) => T;
}

const cases: Case<never>[] = [
  { name: 'TPMT_PUBLIC', gen: randomPublic, encode: encodePublic, decode: decodePublic },
  { name: 'TPM2B_PUBLIC', gen: randomPublic, encode: encodePublic2b, decode: decodePublic2b },
  {
    name: 'TPMS_ATTEST',
    gen: randomAttest,
    encode: encodeAttest,
    decode: decodeAttest,
    // An attestation of a type this library does not interpret keeps its tail raw.
    closed: (rng: Rng) => {
      for (;;) {
        const a = randomAttest(rng);
        if (!a.other) return a;
      }
    },
  },
  { name: 'TPMT_SIGNATURE', gen: randomSignature, encode: encodeSignature, decode: decodeSignature },
  {
    name: 'TPMS_CREATION_DATA',
    gen: randomCreationData,
    encode: encodeCreationData,
    decode: decodeCreationData,
  },
  { name: 'TPMS_NV_PUBLIC', gen: randomNvPublic, encode: encodeNvPublic, decode: decodeNvPublic },
  {
    name: 'TPML_PCR_SELECTION',
    gen: randomPcrSelections,
    encode: encodePcrSelections,
    decode: decodePcrSelections,
  },
  {
    name: 'TPML_DIGEST',
    gen: (rng: Rng) => Array.from({ length: rng.int(9) }, () => rng.bytes(rng.pick([20, 32, 48, 64]))),
    encode: encodeDigests,
    decode: decodeDigests,
  },
  {
    name: 'tpm2-tools credential file',
    gen: (rng: Rng) => ({
      credentialBlob: { integrityHmac: rng.bytes(32), encIdentity: rng.bytes(34) },
      secret: rng.bytes(rng.pick([68, 256])),
    }),
    encode: encodeCredentialFile,
    decode: decodeCredentialFile,
  },
  {
    name: 'TPM2B_ID_OBJECT',
    gen: (rng: Rng) => ({ integrityHmac: rng.bytes(32), encIdentity: rng.bytes(rng.int(40)) }),
    encode: encodeIdObject,
    decode: decodeIdObject,
  },
] as unknown as Case<never>[];

/** Runs `decode` and demands either a value or a TpmError. */
export function mustNotCrash(
  name: string,
  decode: (b: Uint8Array) => unknown,
  input: Uint8Array,
  seed: number,
) {
  try {
    decode(input);
  } catch (e) {
    if (!isTpmError(e)) {
      assert.fail(
        `${name} threw a non-TpmError on seed ${seed} input ${Buffer.from(input).toString('hex')}: ${e}`,
      );
    }
  }
}

describe('parsers: round trip', () => {
  for (const c of cases) {
    test(`${c.name}: decode(encode(x)) equals x and re-encodes to the same bytes`, () => {
      for (let seed = 1; seed <= ROUNDS; seed++) {
        const v = c.gen(new Rng(seed));
        const bytes = c.encode(v);
        const back = c.decode(bytes);
        assert.deepEqual(back, v, `seed ${seed}`);
        assert.deepEqual(c.encode(back as never), bytes, `seed ${seed}`);
      }
    });
  }
});

describe('parsers: hostile input gives a TpmError', () => {
  for (const c of cases) {
    test(`${c.name}: every truncation of a valid encoding is refused`, () => {
      for (let seed = 1; seed <= 40; seed++) {
        const bytes = c.encode((c.closed ?? c.gen)(new Rng(seed)));
        for (let n = 0; n < bytes.length; n++) {
          assert.throws(
            () => c.decode(bytes.subarray(0, n)),
            (e) => isTpmError(e),
            `${c.name} accepted a truncation to ${n} of ${bytes.length} bytes (seed ${seed})`,
          );
        }
      }
    });

    test(`${c.name}: random bytes, bit flips and oversized size fields never crash`, () => {
      for (let seed = 1; seed <= ROUNDS; seed++) {
        const rng = new Rng(seed * 7919);
        mustNotCrash(c.name, c.decode, rng.bytes(rng.int(600)), seed);
        const bytes = c.encode((c.closed ?? c.gen)(rng)).slice();
        const flipped = bytes.slice();
        if (flipped.length > 0) flipped[rng.int(flipped.length)]! ^= 1 << rng.int(8);
        mustNotCrash(c.name, c.decode, flipped, seed);
        // A size/count field set to its maximum somewhere in the structure.
        const big = bytes.slice();
        if (big.length >= 4) {
          const at = rng.int(big.length - 3);
          big.set([0xff, 0xff, 0xff, 0xff], at);
        }
        mustNotCrash(c.name, c.decode, big, seed);
        // Appended garbage is refused.
        const longer = new Uint8Array(bytes.length + 1 + rng.int(70000));
        longer.set(bytes);
        assert.throws(
          () => c.decode(longer),
          (e) => isTpmError(e),
          `seed ${seed}`,
        );
      }
    });
  }
});
