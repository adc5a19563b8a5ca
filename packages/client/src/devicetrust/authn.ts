/**
 * Device authentication, client side (inside `wsh login`, after the user is authenticated):
 * proves the login happens on the enrolled device, and gets the user's certificates back
 * with the three device extensions. Steps are function fields, so tests swap in fakes; the
 * server side is packages/server/src/devicetrust/authn.ts.
 *
 *   1. Init: the credential from the device cache and the device data → begin (over mTLS
 *      with the fresh certificate); the server answers with a nonce.
 *   2. Challenge: the AK quotes PCRs over the nonce; the user's key signs nonce‖session
 *      → finish.
 *   3. Success: augmented certificates (same NotAfter) replace those of the profile.
 *
 * `authenticateDevice` is what `wsh login` calls: it runs the ceremony when this machine
 * holds a credential enrolled in the profile's cluster, and never fails the login — it
 * reports what happened so the CLI can say so.
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested by
 * `authn.test.ts` (fakes) and against swtpm and a real warden in test/devicetrust/.
 */
import { sign } from 'node:crypto';
import { isWardenError, rpc, WardenError } from '@warden/api';
import { UserKey } from '../keys';
import { clientForProfile } from '../login';
import type { LoadedProfile, ProfileStore } from '../profile';
import { DeviceCache, deviceCacheDir } from './cache';
import { type NativeDevice, openNativeDevice, preloadTpmCode } from './native';
import { b64, type CeremonyPhase, type CeremonyTimings, Stopwatch, unb64 } from './steps';

/**
 * The RPC calls device authentication makes (`ApiClient` with the profile; tests pass fakes).
 * `R` is what finish answers: augmented certificates at login, the device for a web proof.
 */
export interface AuthnApi<R = rpc.DeviceAuthnFinishResponse> {
  deviceAuthnBegin(req: rpc.DeviceAuthnBeginRequest): Promise<rpc.DeviceAuthnBeginResponse>;
  deviceAuthnFinish(req: rpc.DeviceAuthnFinishRequest): Promise<R>;
}

/** The server's code when neither the cluster nor the user's roles use device trust. */
export const DEVICE_TRUST_DISABLED = 'WARDEN_ERR_DEVICE_TRUST_DISABLED';

export class AuthnCeremony {
  /** Opens this machine as a device (default: the native implementation for this OS). */
  openDevice: () => Promise<NativeDevice>;
  /** Signs with the user's key, the one in the certificate being augmented. */
  signChallenge: (data: Buffer) => Uint8Array;
  onPhase: ((phase: CeremonyPhase) => void) | undefined;

  constructor(opts: {
    userKey: UserKey;
    env?: NodeJS.ProcessEnv;
    onPhase?: (phase: CeremonyPhase) => void;
  }) {
    const key = opts.userKey.privateKey;
    this.openDevice = () => openNativeDevice(opts.env ?? process.env);
    this.signChallenge = (data) =>
      new Uint8Array(sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key));
    this.onPhase = opts.onPhase;
  }

  /**
   * Runs the ceremony; returns finish's answer (the augmented certificates) and where the time
   * went. The TPM gets ready (its connection, the AK loaded) while begin is on its way, and
   * flushes what it loaded while finish is: only the quote waits for the TPM alone.
   */
  async run<R = rpc.DeviceAuthnFinishResponse>(
    api: AuthnApi<R>,
  ): Promise<{ result: R; timings: CeremonyTimings }> {
    const watch = new Stopwatch(this.onPhase);
    const dev = await watch.device(() => this.openDevice());
    let closing: Promise<void> | undefined;
    try {
      // 1. Init.
      const { cred, data } = await watch.device(async () => ({
        cred: await dev.credential({ create: false }),
        data: await dev.collectDeviceData(),
      }));
      if (!cred) {
        throw new WardenError(
          'WARDEN_ERR_NOT_FOUND',
          'this machine has no device credential; enroll it with `wsh device enroll --token=TOKEN`',
        );
      }
      const [ready, begun] = await Promise.allSettled([
        watch.device(async () => dev.prepare?.(cred)),
        watch.server(() => api.deviceAuthnBegin({ credential_id: cred.id, device_data: data })),
      ]);
      // The server's refusal first: DEVICE_TRUST_DISABLED means the TPM was not needed.
      if (begun.status === 'rejected') throw begun.reason;
      if (ready.status === 'rejected') throw ready.reason;
      const begin = begun.value;

      // 2. Challenge.
      const nonce = unb64(begin.nonce);
      const quote = await watch.device(() => dev.quote(cred, nonce, begin.pcr_selection));
      const signature = this.signChallenge(rpc.deviceAuthnSignedData(nonce, begin.session_id));
      closing = watch.device(() => dev.close());
      const result = await watch.server(() =>
        api.deviceAuthnFinish({
          session_id: begin.session_id,
          quote: {
            attest: b64(quote.attest),
            signature: b64(quote.signature),
            pcrs: quote.pcrs.map((p) => ({ hash: p.hash, pcr: p.pcr, digest: b64(p.digest) })),
          },
          ssh_signature: b64(signature),
        }),
      );

      // 3. Success.
      return { result, timings: watch.timings };
    } finally {
      await (closing ?? watch.device(() => dev.close()));
    }
  }
}

export type DeviceLoginOutcome =
  /** No enrolled credential for this cluster here, or device trust is off for this user. */
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'authenticated'; profile: LoadedProfile; device: rpc.DeviceSummary; timings: CeremonyTimings }
  /** The user stays logged in, without device extensions. */
  | { outcome: 'failed'; error: Error };

/**
 * Gets `authenticateDevice` ready while a login is under way: on a machine that holds a device
 * credential, loads the TPM code (the rest of the ceremony's code is loaded with this module).
 */
export function preloadDeviceAuthentication(env: NodeJS.ProcessEnv = process.env): void {
  if (new DeviceCache(deviceCacheDir(env)).load()) preloadTpmCode();
}

/**
 * Device authentication after `wsh login`: when this machine holds a credential that the
 * profile's cluster enrolled, runs the ceremony and stores the augmented certificates in the
 * profile. Never throws for a refused ceremony: the login stands without the device.
 *
 * @example
 *   const r = await authenticateDevice(store, profile, { env: process.env });
 *   if (r.outcome === 'failed') console.error(`device authentication failed: ${r.error.message}`);
 */
export async function authenticateDevice(
  store: ProfileStore,
  profile: LoadedProfile,
  opts: {
    env?: NodeJS.ProcessEnv;
    /** Tests and the benchmark pass their own ceremony (fakes, timing). */
    ceremony?: AuthnCeremony;
    api?: AuthnApi;
    onPhase?: (phase: CeremonyPhase) => void;
  } = {},
): Promise<DeviceLoginOutcome> {
  const env = opts.env ?? process.env;
  const enrolled = new DeviceCache(deviceCacheDir(env)).enrollmentIn(profile.cluster);
  if (!enrolled && !opts.ceremony) {
    return { outcome: 'skipped', reason: `this machine is not enrolled in cluster "${profile.cluster}"` };
  }
  const ceremony =
    opts.ceremony ??
    new AuthnCeremony({
      userKey: UserKey.fromPem(profile.keyPem),
      env,
      ...(opts.onPhase ? { onPhase: opts.onPhase } : {}),
    });
  let run: { result: rpc.DeviceAuthnFinishResponse; timings: CeremonyTimings };
  try {
    run = await ceremony.run(opts.api ?? clientForProfile(profile));
  } catch (e) {
    if (isWardenError(e, DEVICE_TRUST_DISABLED)) return { outcome: 'skipped', reason: e.message };
    return { outcome: 'failed', error: e instanceof Error ? e : new Error(String(e)) };
  }
  // The same key and NotAfter: only the certificates change.
  const saved = store.saveCertificates(profile, {
    sshCert: run.result.ssh_cert,
    tlsCert: run.result.tls_cert,
    expires: run.result.expires,
  });
  return { outcome: 'authenticated', profile: saved, device: run.result.device, timings: run.timings };
}
