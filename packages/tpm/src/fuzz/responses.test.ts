/**
 * A TPM (or whatever sits on the wire) answering garbage: every `Tpm` method, given random,
 * truncated and bit-flipped responses built around well-formed ones, resolves or rejects
 * with a TpmError — never another exception, and never waits for more.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Rng,
  randomAttest,
  randomCreationData,
  randomNvPublic,
  randomPcrSelections,
  randomPublic,
  randomSignature,
} from '../../../../test/support/tpm-random';
import { Tpm } from '../commands';
import { TPM_ALG, TPM_ST } from '../constants';
import { isTpmError } from '../errors';
import {
  encodeAttest,
  encodeCreationData,
  encodeNvPublic,
  encodePcrSelections,
  encodePublic,
  encodeSignature,
  Writer,
} from '../marshal';
import type { TpmTransport } from '../transport';

const SESSIONS = 0x8002;

/** A response: header, `handles`, then the parameters (with parameterSize and one empty auth when `sessions`). */
function response(sessions: boolean, handles: number[], params: Uint8Array): Uint8Array {
  const w = new Writer()
    .u16(sessions ? SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(0)
    .u32(0);
  for (const h of handles) w.u32(h);
  if (sessions) w.u32(params.length);
  w.bytes(params);
  if (sessions) w.u16(0).u8(1).u16(0);
  const out = w.finish();
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}

type Call = (tpm: Tpm) => Promise<unknown>;

const ticket = (w: Writer, rng: Rng) => w.u16(TPM_ST.CREATION).u32(0x40000001).tpm2b(rng.bytes(32));

const cases: { name: string; call: Call; valid: (rng: Rng) => Uint8Array }[] = [
  {
    name: 'ReadPublic',
    call: (t) => t.readPublic(0x81010001),
    valid: (rng) =>
      response(
        false,
        [],
        new Writer()
          .tpm2b(encodePublic(randomPublic(rng)))
          .tpm2b(rng.bytes(34))
          .tpm2b(rng.bytes(34))
          .finish(),
      ),
  },
  {
    name: 'CreatePrimary',
    call: (t) => t.createPrimary({ hierarchy: 0x4000000b, template: randomPublic(new Rng(1)) }),
    valid: (rng) => {
      const w = new Writer()
        .tpm2b(encodePublic(randomPublic(rng)))
        .tpm2b(encodeCreationData(randomCreationData(rng)));
      w.tpm2b(rng.bytes(32));
      ticket(w, rng);
      return response(true, [0x80000000], w.tpm2b(rng.bytes(34)).finish());
    },
  },
  {
    name: 'Create',
    call: (t) => t.create({ parent: 0x80000000, template: randomPublic(new Rng(2)) }),
    valid: (rng) => {
      const w = new Writer().tpm2b(rng.bytes(rng.int(200))).tpm2b(encodePublic(randomPublic(rng)));
      w.tpm2b(encodeCreationData(randomCreationData(rng))).tpm2b(rng.bytes(32));
      ticket(w, rng);
      return response(true, [], w.finish());
    },
  },
  {
    name: 'Load',
    call: (t) =>
      t.load({ parent: 0x80000000, private: new Uint8Array(10), public: randomPublic(new Rng(3)) }),
    valid: (rng) => response(true, [0x80000001], new Writer().tpm2b(rng.bytes(34)).finish()),
  },
  {
    name: 'NV_ReadPublic',
    call: (t) => t.nvReadPublic(0x01c00002),
    valid: (rng) =>
      response(
        false,
        [],
        new Writer()
          .tpm2b(encodeNvPublic(randomNvPublic(rng)))
          .tpm2b(rng.bytes(34))
          .finish(),
      ),
  },
  {
    name: 'NV_Read',
    call: (t) => t.nvRead(0x01c00002, { size: 16, chunkSize: 16 }),
    valid: (rng) => response(true, [], new Writer().tpm2b(rng.bytes(16)).finish()),
  },
  {
    name: 'PCR_Read',
    call: (t) => t.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2] }]),
    valid: (rng) => {
      const w = new Writer().u32(rng.next()).bytes(encodePcrSelections(randomPcrSelections(rng)));
      const n = rng.int(9);
      w.u32(n);
      for (let i = 0; i < n; i++) w.tpm2b(rng.bytes(32));
      return response(false, [], w.finish());
    },
  },
  {
    name: 'Quote',
    call: (t) => t.quote({ signHandle: 0x80000001, qualifyingData: new Uint8Array(8), pcrs: [] }),
    valid: (rng) =>
      response(
        true,
        [],
        new Writer()
          .tpm2b(encodeAttest(randomAttest(rng)))
          .bytes(encodeSignature(randomSignature(rng)))
          .finish(),
      ),
  },
  {
    name: 'GetCapability',
    call: (t) => t.getHandles(),
    valid: (rng) => {
      const n = rng.int(5);
      const w = new Writer().u8(rng.int(2)).u32(1).u32(n);
      for (let i = 0; i < n; i++) w.u32(0x80000000 + i);
      return response(false, [], w.finish());
    },
  },
  {
    name: 'StartAuthSession',
    call: (t) => t.startAuthSession({ nonceCaller: new Uint8Array(16) }),
    valid: (rng) => response(false, [0x03000000], new Writer().tpm2b(rng.bytes(32)).finish()),
  },
  {
    name: 'GetRandom',
    call: (t) => t.getRandom(8),
    valid: (rng) => response(false, [], new Writer().tpm2b(rng.bytes(8)).finish()),
  },
];

function mutate(rng: Rng, valid: Uint8Array): Uint8Array {
  switch (rng.int(4)) {
    case 0:
      return rng.bytes(rng.int(80));
    case 1: {
      // Truncated, with the size field fixed up so that the transport layer accepts it.
      const cut = valid.slice(0, 10 + rng.int(Math.max(1, valid.length - 10)));
      if (cut.length >= 6) new DataView(cut.buffer).setUint32(2, cut.length);
      return cut;
    }
    case 2: {
      const b = valid.slice();
      for (let i = 0; i <= rng.int(3); i++) b[10 + rng.int(Math.max(1, b.length - 10))]! ^= 1 << rng.int(8);
      return b;
    }
    default:
      return valid;
  }
}

test('every command parses hostile responses into a value or a TpmError', async () => {
  for (const c of cases) {
    for (let seed = 1; seed <= 150; seed++) {
      const rng = new Rng(seed * 104729);
      const valid = c.valid(rng);
      let sent = 0;
      const transport: TpmTransport = {
        description: 'fuzz',
        close: async () => {},
        send: async () => {
          sent++;
          return sent === 1 ? mutate(rng, valid) : rng.bytes(rng.int(40));
        },
      };
      try {
        await c.call(new Tpm(transport));
      } catch (e) {
        assert.ok(isTpmError(e), `${c.name} seed ${seed}: ${String(e)}`);
      }
      assert.ok(sent < 100, `${c.name} seed ${seed}: ${sent} commands sent`);
    }
  }
});

test('the well-formed responses of the fuzz cases parse (so the fuzzing starts from valid input)', async () => {
  for (const c of cases) {
    const valid = c.valid(new Rng(7));
    const transport: TpmTransport = { description: 'ok', close: async () => {}, send: async () => valid };
    await c.call(new Tpm(transport));
  }
});
