/**
 * Timing of ceremony steps: how long the TPM worked and how long the server took, so
 * `wsh` can show progress and the benchmark can split a login's latency. Device and server
 * phases may overlap (the TPM gets ready while the first RPC is on its way): `deviceOnlyMs`
 * is the time the ceremony waited for the device and nothing else, the part of its wall
 * time that is the device's and not Warden's.
 * Internal to `devicetrust/`.
 */

export interface CeremonyTimings {
  /** Time spent in the device: TPM commands, DMI reads, the device cache. */
  deviceMs: number;
  /** Time spent waiting for Warden (RPC round trips). */
  serverMs: number;
  /** Time a device phase ran while no server phase did. */
  deviceOnlyMs: number;
}

export type CeremonyPhase = 'device' | 'server';

export class Stopwatch {
  readonly timings: CeremonyTimings = { deviceMs: 0, serverMs: 0, deviceOnlyMs: 0 };
  readonly #onPhase: ((phase: CeremonyPhase) => void) | undefined;
  readonly #running = { device: 0, server: 0 };
  #since = 0;

  constructor(onPhase?: (phase: CeremonyPhase) => void) {
    this.#onPhase = onPhase;
  }

  async device<T>(f: () => Promise<T> | T): Promise<T> {
    return this.#time('device', f);
  }

  async server<T>(f: () => Promise<T>): Promise<T> {
    return this.#time('server', f);
  }

  /** Counts the time since the last change of the running phases, then applies `delta`. */
  #change(phase: CeremonyPhase, delta: 1 | -1, now: number): void {
    if (this.#running.device > 0 && this.#running.server === 0)
      this.timings.deviceOnlyMs += now - this.#since;
    this.#since = now;
    this.#running[phase] += delta;
  }

  async #time<T>(phase: CeremonyPhase, f: () => Promise<T> | T): Promise<T> {
    this.#onPhase?.(phase);
    const start = performance.now();
    this.#change(phase, 1, start);
    try {
      return await f();
    } finally {
      const end = performance.now();
      this.#change(phase, -1, end);
      if (phase === 'device') this.timings.deviceMs += end - start;
      else this.timings.serverMs += end - start;
    }
  }
}

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
