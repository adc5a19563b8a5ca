/**
 * Shared by `bench:devicetrust` and `bench:web`: device authentication as `wsh login` runs it,
 * in process against a running warden — a password login, then the TPM ceremony that augments
 * its certificates — timed around the ceremony alone. Not a benchmark by itself.
 */
import {
  ApiClient,
  AuthnCeremony,
  type CeremonyTimings,
  login,
  type ProfileStore,
  UserKey,
} from '@warden/client';

export interface DeviceLogins {
  /** Each ceremony's wall time, ms. */
  totals: number[];
  /** Each ceremony's own split (the TPM's time, the RPCs'). */
  timings: CeremonyTimings[];
}

/**
 * `n` device authentications, each after a password login of `user` into `store`, plus one
 * untimed warm-up first. `env` is the enrolled machine's environment (its TPM and device cache).
 */
export async function timeDeviceLogins(o: {
  store: ProfileStore;
  proxy: string;
  caPin: string;
  hostCaPems: string[];
  user: string;
  password: string;
  env: NodeJS.ProcessEnv;
  n: number;
}): Promise<DeviceLogins> {
  const out: DeviceLogins = { totals: [], timings: [] };
  for (let i = 0; i <= o.n; i++) {
    const profile = await login(
      o.store,
      { proxy: o.proxy, user: o.user, caPin: o.caPin },
      { password: async () => o.password, otp: async () => '' },
    );
    const api = new ApiClient({
      proxy: o.proxy,
      caPems: o.hostCaPems,
      identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
    });
    const ceremony = new AuthnCeremony({ userKey: UserKey.fromPem(profile.keyPem), env: o.env });
    const start = performance.now();
    const { timings } = await ceremony.run(api);
    if (i === 0) continue; // warm-up
    out.timings.push(timings);
    out.totals.push(performance.now() - start);
  }
  return out;
}
