/**
 * Test-only: a seeded PRNG (xorshift32) and generators of random TPM structures for the
 * property and fuzz tests. Seeded so that a failure names the seed that reproduces it.
 * Who may import: *.test.ts files (the TPM package's fuzz and verify tests).
 */
import {
  type PcrSelection,
  TPM_ALG,
  TPM_ST,
  type TpmsAttest,
  type TpmsCreationData,
  type TpmsNvPublic,
  type TpmtPublic,
  type TpmtSignature,
} from '@warden/tpm';

export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bool(): boolean {
    return (this.next() & 1) === 1;
  }
}

const HASHES = [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512];

export function randomPcrSelections(rng: Rng): PcrSelection[] {
  const out: PcrSelection[] = [];
  for (let i = rng.int(4); i > 0; i--) {
    const pcrs: number[] = [];
    for (let p = 0; p < 24; p++) if (rng.bool()) pcrs.push(p);
    out.push({ hash: rng.pick(HASHES), pcrs });
  }
  return out;
}

export function randomPublic(rng: Rng): TpmtPublic {
  const base = {
    nameAlg: rng.pick(HASHES),
    objectAttributes: rng.next(),
    authPolicy: rng.bytes(rng.pick([0, 32, 48])),
  };
  const symmetric = rng.bool()
    ? { algorithm: TPM_ALG.NULL }
    : { algorithm: TPM_ALG.AES, keyBits: rng.pick([128, 256]), mode: TPM_ALG.CFB };
  if (rng.bool()) {
    return {
      ...base,
      type: TPM_ALG.RSA,
      parameters: {
        symmetric,
        scheme: rng.bool() ? { scheme: TPM_ALG.NULL } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
        keyBits: 2048,
        exponent: rng.bool() ? 0 : 65537,
      },
      unique: rng.bytes(rng.pick([0, 256, 512])),
    };
  }
  return {
    ...base,
    type: TPM_ALG.ECC,
    parameters: {
      symmetric,
      scheme: rng.pick([
        { scheme: TPM_ALG.NULL },
        { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
        { scheme: TPM_ALG.ECDAA, hashAlg: TPM_ALG.SHA256, count: rng.int(65536) },
      ]),
      curveId: rng.pick([3, 4]),
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: rng.bytes(rng.pick([0, 32, 48])), y: rng.bytes(rng.pick([0, 32, 48])) },
  };
}

export function randomAttest(rng: Rng): TpmsAttest {
  const base = {
    magic: rng.bool() ? 0xff544347 : rng.next(),
    qualifiedSigner: rng.bytes(rng.pick([0, 34, 50])),
    extraData: rng.bytes(rng.int(66)),
    clockInfo: {
      clock: BigInt(rng.next()) * 65536n,
      resetCount: rng.next(),
      restartCount: rng.next(),
      safe: rng.bool(),
    },
    firmwareVersion: (BigInt(rng.next()) << 32n) | BigInt(rng.next()),
  };
  switch (rng.int(4)) {
    case 0:
      return {
        ...base,
        type: TPM_ST.ATTEST_QUOTE,
        quote: { pcrSelect: randomPcrSelections(rng), pcrDigest: rng.bytes(32) },
      };
    case 1:
      return {
        ...base,
        type: TPM_ST.ATTEST_CERTIFY,
        certify: { name: rng.bytes(34), qualifiedName: rng.bytes(34) },
      };
    case 2:
      return {
        ...base,
        type: TPM_ST.ATTEST_CREATION,
        creation: { objectName: rng.bytes(34), creationHash: rng.bytes(32) },
      };
    default:
      return { ...base, type: TPM_ST.ATTEST_TIME, other: rng.bytes(rng.int(40)) };
  }
}

export function randomSignature(rng: Rng): TpmtSignature {
  switch (rng.int(3)) {
    case 0:
      return {
        sigAlg: rng.pick([TPM_ALG.RSASSA, TPM_ALG.RSAPSS]),
        hash: rng.pick(HASHES),
        signature: rng.bytes(256),
      };
    case 1:
      return { sigAlg: TPM_ALG.ECDSA, hash: rng.pick(HASHES), r: rng.bytes(32), s: rng.bytes(rng.int(33)) };
    default:
      return { sigAlg: TPM_ALG.NULL };
  }
}

export function randomCreationData(rng: Rng): TpmsCreationData {
  return {
    pcrSelect: randomPcrSelections(rng),
    pcrDigest: rng.bytes(32),
    locality: rng.int(256),
    parentNameAlg: rng.pick(HASHES),
    parentName: rng.bytes(rng.pick([4, 34])),
    parentQualifiedName: rng.bytes(34),
    outsideInfo: rng.bytes(rng.int(20)),
  };
}

export function randomNvPublic(rng: Rng): TpmsNvPublic {
  return {
    nvIndex: rng.next(),
    nameAlg: rng.pick(HASHES),
    attributes: rng.next(),
    authPolicy: rng.bytes(rng.pick([0, 32])),
    dataSize: rng.int(2049),
  };
}
