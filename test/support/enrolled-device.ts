/**
 * Test-only: what the unit tests of the ceremonies that need an enrolled device share (device
 * authentication at login, the Web UI's device trust) — the stores on a fake clock, the
 * cluster's CAs, the device inventory, the live views with one access checker over them (as
 * in `warden start`), and one device enrolled with a SoftTpm through the real enrollment.
 * Who may import: `*.test.ts` files.
 */
import { randomUUID } from 'node:crypto';
import { AUTH_PREFERENCE_NAME, type DeviceTrustMode, type rpc } from '@warden/api';
import { liveAccessChecker } from '../../packages/server/src/access';
import { MemoryAuditLog } from '../../packages/server/src/audit';
import { MemoryBackend } from '../../packages/server/src/backend';
import { CertAuthorities } from '../../packages/server/src/ca';
import { FakeClock } from '../../packages/server/src/clock';
import { DeviceEnrollment, DeviceInventory } from '../../packages/server/src/devicetrust';
import { silentLogger } from '../../packages/server/src/log';
import { createServices } from '../../packages/server/src/services';
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
  const clock = new FakeClock(Date.now());
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const audit = new MemoryAuditLog({ clock });
  const services = createServices({ backend, clock });
  await services.ensurePresets();
  const cas = await CertAuthorities.init({ backend, clusterName: 'test', clock });
  const inventory = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
  /** What each ceremony is built with (plus `cas` and `checker` where it needs them). */
  const deps = { inventory, services, backend, clock, audit, logger: silentLogger };
  const cap = await services.authPreference.get();
  await services.authPreference.upsert({
    ...cap,
    metadata: { name: AUTH_PREFERENCE_NAME },
    spec: { ...cap.spec, device_trust: { ...cap.spec.device_trust, mode: o.mode } },
  });
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
