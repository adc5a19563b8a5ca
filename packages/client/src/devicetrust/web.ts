/**
 * Browser device trust, client side (DESIGN §7): `wsh device web-helper` and
 * `wsh device web-auth` answer a web device challenge from the Web UI with this machine's
 * TPM, over wsh's own mTLS channel as the logged-in user. The server checks that the user,
 * the address and the enrolled device match the browser's session; the page learns the
 * outcome from the server, not from us.
 *
 *   1. Init: the credential and device data → POST /v1/devices/web/begin { challenge… }
 *   2. Challenge: the AK quotes over the nonce, the user's key signs → /v1/devices/web/finish
 *   3. Success: the browser's web session is device-trusted.
 *
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested against
 * swtpm, a real warden and Chromium in test/web/.
 */
import { type rpc, WardenError } from '@warden/api';
import { UserKey } from '../keys';
import { clientForProfile } from '../login';
import type { LoadedProfile } from '../profile';
import { type AuthnApi, AuthnCeremony } from './authn';
import { DeviceCache, deviceCacheDir } from './cache';
import type { CeremonyTimings } from './steps';

export interface WebChallenge {
  id: string;
  secret: string;
}

/**
 * Runs the device ceremony for a web device challenge as the profile's user.
 *
 * @example
 *   const { device } = await proveWebDevice(store.require(proxy), { id, secret }, { env: process.env });
 */
export async function proveWebDevice(
  profile: LoadedProfile,
  challenge: WebChallenge,
  opts: { env?: NodeJS.ProcessEnv; ceremony?: AuthnCeremony } = {},
): Promise<{ device: rpc.DeviceSummary; timings: CeremonyTimings }> {
  const env = opts.env ?? process.env;
  if (!opts.ceremony && !new DeviceCache(deviceCacheDir(env)).enrollmentIn(profile.cluster)) {
    throw new WardenError(
      'WARDEN_ERR_NOT_FOUND',
      `this machine is not enrolled in cluster "${profile.cluster}": enroll it with ` +
        '`wsh device enroll --token=TOKEN` (or `wsh device enroll --current-device`), then try again',
    );
  }
  const api = clientForProfile(profile);
  const bound = { challenge_id: challenge.id, challenge_secret: challenge.secret };
  const web: AuthnApi<rpc.DeviceWebFinishResponse> = {
    deviceAuthnBegin: (req) => api.deviceWebBegin({ ...req, ...bound }),
    deviceAuthnFinish: (req) => api.deviceWebFinish({ ...req, ...bound }),
  };
  const ceremony = opts.ceremony ?? new AuthnCeremony({ userKey: UserKey.fromPem(profile.keyPem), env });
  const { result, timings } = await ceremony.run(web);
  return { device: result.device, timings };
}

/** Parses the page's fallback link `wsh://device-trust?proxy=…&id=…&secret=…`. */
export function parseWebAuthLink(link: string): { proxy: string; challenge: WebChallenge } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'not a wsh:// link');
  }
  const proxy = url.searchParams.get('proxy');
  const id = url.searchParams.get('id');
  const secret = url.searchParams.get('secret');
  if (url.protocol !== 'wsh:' || url.hostname !== 'device-trust' || !proxy || !id || !secret) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'expected a link like wsh://device-trust?proxy=HOST:PORT&id=…&secret=… (from the Web UI)',
    );
  }
  return { proxy, challenge: { id, secret } };
}
