/**
 * Timing of ceremony steps: how long the TPM worked and how long the server took, so
 * `wsh` can show progress and the benchmark can split a login's latency.
 * Internal to `devicetrust/`.
 */

export interface CeremonyTimings {
  /** Time spent in the device: TPM commands, DMI reads, the device cache. */
  deviceMs: number;
  /** Time spent waiting for Warden (RPC round trips). */
  serverMs: number;
}

export type CeremonyPhase = 'device' | 'server';

export class Stopwatch {
  readonly timings: CeremonyTimings = { deviceMs: 0, serverMs: 0 };
  readonly #onPhase: ((phase: CeremonyPhase) => void) | undefined;

  constructor(onPhase?: (phase: CeremonyPhase) => void) {
    this.#onPhase = onPhase;
  }

  async device<T>(f: () => Promise<T> | T): Promise<T> {
    return this.#time('device', f);
  }

  async server<T>(f: () => Promise<T>): Promise<T> {
    return this.#time('server', f);
  }

  async #time<T>(phase: CeremonyPhase, f: () => Promise<T> | T): Promise<T> {
    this.#onPhase?.(phase);
    const start = performance.now();
    try {
      return await f();
    } finally {
      const ms = performance.now() - start;
      if (phase === 'device') this.timings.deviceMs += ms;
      else this.timings.serverMs += ms;
    }
  }
}

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
