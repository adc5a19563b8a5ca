/**
 * Test-only: what the unit tests of the ceremonies that need an enrolled device share (device
 * authentication at login, the Web UI's device trust) — the stores on a fake clock, the
 * cluster's CAs, the device inventory, the live views with one access checker over them (as
 * in `warden start`), and one device enrolled with a SoftTpm through the real enrollment.
 * Who may import: `*.test.ts` files.
 */
import { randomUUID } from 'node:crypto';
import type { DeviceTrustMode, rpc } from '@warden/api';
import { liveAccessChecker } from '../../packages/server/src/access';
import { FakeClock } from '../../packages/server/src/clock';
import { DeviceEnrollment, DeviceInventory } from '../../packages/server/src/devicetrust';
import { silentLogger } from '../../packages/server/src/log';
import { startCore } from './in-process';
import { SoftTpm } from './soft-tpm';

/** Who adds the device and its enroll token. */
export const ADMIN = { user: 'admin' };
/** The enrolled device's asset tag (its serial number in the device data). */
export const ASSET_TAG = 'C00AA0AAAA0A';

/**
 * Starts the stores with cluster device trust `mode` (stored before the live views start) and
 * enrolls one linux device (`deviceData`: more device data for its enrollment); `close()`
 * stops the views and the backend.
 */
export async function startEnrolledDevice(o: {
  mode: DeviceTrustMode;
  deviceData?: Partial<rpc.DeviceData>;
}) {
  const core = await startCore('test', new FakeClock(Date.now()), { reapIntervalMs: 0 });
  const { clock, backend, audit, services, cas } = core;
  const inventory = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
  /** What each ceremony is built with (plus `cas` and `checker` where it needs them). */
  const deps = { inventory, services, backend, clock, audit, logger: silentLogger };
  const { device_trust } = (await services.authPreference.get()).spec;
  await core.setAuthPreference({ device_trust: { ...device_trust, mode: o.mode } });
  const views = services.accessViews({ logger: silentLogger });
  await views.start();
  const checker = liveAccessChecker(views, { clock });
  const device = await inventory.add(ADMIN, { osType: 'linux', assetTag: ASSET_TAG });
  const tpm = new SoftTpm();
  const credentialId = randomUUID();
  await tpm.enroll(new DeviceEnrollment({ ...deps, checker }), {
    token: (await inventory.createEnrollToken(ADMIN, device.metadata.name)).token,
    credential_id: credentialId,
    device_data: {
      collect_time: new Date(clock.now()).toISOString(),
      os_type: 'linux',
      serial_number: ASSET_TAG,
      ...o.deviceData,
    },
  });
  return {
    clock,
    backend,
    audit,
    services,
    cas,
    inventory,
    deps,
    views,
    checker,
    device,
    tpm,
    credentialId,
    close(): Promise<void> {
      views.close();
      return backend.close();
    },
  };
}
