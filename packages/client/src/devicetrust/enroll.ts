/**
 * The enrollment ceremony, client side (`wsh device enroll`): proves to the cluster that this
 * machine's TPM holds the AK it presents, with the enrollment token an admin made for the
 * device. Steps are function fields, so tests swap in fakes; the server side is
 * packages/server/src/devicetrust/enroll.ts.
 *
 *   1. Init: the device data, the credential (an AK created once and kept TPM-wrapped in the
 *      device cache), the EK (certificate when there is one) and the AK's certified creation
 *      → begin; the server spends the token and answers with a challenge and a nonce.
 *   2. Challenge: ActivateCredential releases the challenge; the AK quotes PCRs over the nonce
 *      → finish.
 *   3. Success: the device is enrolled; the cache remembers the cluster.
 *
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested by
 * `enroll.test.ts` (fakes) and against swtpm and a real warden in test/devicetrust/.
 */
import type { rpc } from '@warden/api';
import { type NativeDevice, openNativeDevice } from './native';
import { b64, type CeremonyPhase, Stopwatch, unb64 } from './steps';

/** The RPC calls enrollment makes (`ApiClient`; tests pass fakes). */
export interface EnrollApi {
  deviceEnrollBegin(req: rpc.DeviceEnrollBeginRequest): Promise<rpc.DeviceEnrollBeginResponse>;
  deviceEnrollFinish(req: rpc.DeviceEnrollFinishRequest): Promise<rpc.DeviceEnrollFinishResponse>;
}

export interface EnrollRequest {
  /** The enrollment token; undefined for auto-enrollment (the API client holds the user's certificate). */
  token: string | undefined;
  /** Where the enrollment is remembered (the cluster's name and proxy address). */
  cluster: string;
  proxy: string;
}

export class EnrollCeremony {
  /** Opens this machine as a device (default: the native implementation for this OS). */
  openDevice: () => Promise<NativeDevice>;
  /** Called when the ceremony moves between the device (TPM) and the server: for a spinner. */
  onPhase: ((phase: CeremonyPhase) => void) | undefined;
  /** The current time (for the enrollment record). */
  now: () => Date = () => new Date();

  constructor(opts: { env?: NodeJS.ProcessEnv; onPhase?: (phase: CeremonyPhase) => void } = {}) {
    this.openDevice = () => openNativeDevice(opts.env ?? process.env);
    this.onPhase = opts.onPhase;
  }

  /**
   * Runs the ceremony; returns the enrolled device and where the time went.
   *
   * @example
   *   const { device } = await new EnrollCeremony().run(api, { token, cluster: 'warden', proxy });
   */
  async run(
    api: EnrollApi,
    req: EnrollRequest,
  ): Promise<{ device: rpc.DeviceSummary; timings: Stopwatch['timings'] }> {
    const watch = new Stopwatch(this.onPhase);
    const dev = await watch.device(() => this.openDevice());
    try {
      // 1. Init.
      const { cred, init, data } = await watch.device(async () => {
        const data = await dev.collectDeviceData();
        const cred = (await dev.credential({ create: true }))!;
        return { cred, init: await dev.enrollInit(cred), data };
      });
      const begin = await watch.server(() =>
        api.deviceEnrollBegin({
          ...(req.token !== undefined ? { token: req.token } : {}),
          credential_id: cred.id,
          device_data: data,
          ek: {
            public: b64(init.ek.public),
            ...(init.ek.certDer ? { cert_der: b64(init.ek.certDer) } : {}),
            ...(init.ek.chainDer?.length ? { chain_der: init.ek.chainDer.slice(0, 8).map(b64) } : {}),
          },
          ak: {
            public: b64(init.ak.public),
            creation_data: b64(init.ak.creationData),
            creation_attest: b64(init.ak.creationAttest),
            creation_signature: b64(init.ak.creationSignature),
          },
        }),
      );

      // 2. Challenge.
      const { solution, quote } = await watch.device(async () => ({
        solution: await dev.activate(
          cred,
          unb64(begin.challenge.credential_blob),
          unb64(begin.challenge.secret),
        ),
        quote: await dev.quote(cred, unb64(begin.nonce), begin.pcr_selection),
      }));
      const finish = await watch.server(() =>
        api.deviceEnrollFinish({
          session_id: begin.session_id,
          solution: b64(solution),
          quote: {
            attest: b64(quote.attest),
            signature: b64(quote.signature),
            pcrs: quote.pcrs.map((p) => ({ hash: p.hash, pcr: p.pcr, digest: b64(p.digest) })),
          },
        }),
      );

      // 3. Success.
      await watch.device(() =>
        dev.recordEnrollment({
          cluster: req.cluster,
          proxy: req.proxy,
          deviceId: finish.device.id,
          assetTag: finish.device.asset_tag,
          time: this.now().toISOString(),
        }),
      );
      return { device: finish.device, timings: watch.timings };
    } finally {
      await dev.close();
    }
  }
}
