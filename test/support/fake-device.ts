/**
 * Test-only: a NativeDevice that records the steps the ceremonies take and answers with
 * fixed bytes. Who may import: `*.test.ts` files (the client's devicetrust tests).
 */
import type { rpc } from '@warden/api';
import type {
  Enrollment,
  NativeDevice,
  StoredCredential,
  TpmEnrollInit,
  TpmQuoteResult,
} from '../../packages/client/src/devicetrust';

export class FakeDevice implements NativeDevice {
  readonly osType = 'linux' as const;
  readonly calls: string[] = [];
  readonly enrollments: Enrollment[] = [];
  cred: StoredCredential | undefined;
  closed = false;
  /** What activate() releases. */
  solution = new Uint8Array([42, 42]);
  failOn: string | undefined;

  constructor(opts: { withCredential?: boolean } = {}) {
    if (opts.withCredential) this.cred = FakeDevice.credential();
  }

  static credential(): StoredCredential {
    return {
      id: '6c9f0a1e-0000-4000-8000-000000000001',
      akPublic: new Uint8Array([1]),
      akPrivate: new Uint8Array([2]),
      creationData: new Uint8Array([3]),
      creationHash: new Uint8Array([4]),
      creationTicket: { tag: 1, hierarchy: 2, digest: new Uint8Array([5]) },
      createTime: '2026-01-01T00:00:00.000Z',
      enrollments: [],
    };
  }

  #step(name: string): void {
    this.calls.push(name);
    if (this.failOn === name) throw new Error(`${name} failed`);
  }

  async assetTag(): Promise<string> {
    this.#step('assetTag');
    return 'TAG1';
  }

  async collectDeviceData(): Promise<rpc.DeviceData> {
    this.#step('collectDeviceData');
    return { collect_time: '2026-01-01T00:00:00.000Z', os_type: 'linux', serial_number: 'TAG1' };
  }

  async credential(opts: { create: boolean }): Promise<StoredCredential | undefined> {
    this.#step(`credential(${opts.create ? 'create' : 'load'})`);
    if (!this.cred && opts.create) this.cred = FakeDevice.credential();
    return this.cred;
  }

  async enrollInit(_cred: StoredCredential): Promise<TpmEnrollInit> {
    this.#step('enrollInit');
    return {
      ek: { public: new Uint8Array([10]), certDer: new Uint8Array([11]) },
      ak: {
        public: new Uint8Array([1]),
        creationData: new Uint8Array([3]),
        creationAttest: new Uint8Array([12]),
        creationSignature: new Uint8Array([13]),
      },
    };
  }

  async activate(_cred: StoredCredential, blob: Uint8Array, secret: Uint8Array): Promise<Uint8Array> {
    this.#step(`activate(${[...blob]},${[...secret]})`);
    return this.solution;
  }

  async quote(_cred: StoredCredential, nonce: Uint8Array, selection: { hash: number; pcrs: number[] }[]) {
    this.#step(`quote(${[...nonce]},${JSON.stringify(selection)})`);
    const q: TpmQuoteResult = {
      attest: new Uint8Array([20]),
      signature: new Uint8Array([21]),
      pcrs: [{ hash: 11, pcr: 0, digest: new Uint8Array([22]) }],
    };
    return q;
  }

  recordEnrollment(e: Enrollment): void {
    this.#step('recordEnrollment');
    this.enrollments.push(e);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
