/**
 * An AuditLog interceptor that completes the trusted device of every event with its OS type
 * (DESIGN §5: events carry the device — ID, OS, asset tag, credential ID). Certificates carry
 * the ID, asset tag and credential ID but not the OS, which lives in the device inventory: each
 * protocol would otherwise need its own inventory lookup. Composed once in `bin/`, so every
 * emitter (SSH node and proxy, databases, apps, Kubernetes, the Web UI) gets it.
 * Internal to `audit/`; the public surface is `audit/index.ts`. Tested by `device-os.test.ts`.
 */
import type { AuditEventInput } from '@warden/api';
import type { AuditLog, AuditStatementBase } from './types';

/** The OS type of a device in the inventory (undefined when it is not there). */
export type DeviceOsTypeLookup = (deviceId: string) => Promise<string | undefined>;

/** Device IDs are UUIDs and a device's OS never changes: remember this many answers. */
const CACHE_LIMIT = 10_000;

/**
 * `log`, with `device.os_type` filled in from `lookup` for events that name a device without
 * it. A lookup that fails leaves the event as it was (the event is never lost for it).
 *
 * @example
 *   const audit = withDeviceOsType(store, async (id) => (await services.devices.find(id))?.spec.os_type);
 */
export function withDeviceOsType(log: AuditLog, lookup: DeviceOsTypeLookup): AuditLog {
  const known = new Map<string, string>();
  const osTypeOf = async (id: string): Promise<string | undefined> => {
    const cached = known.get(id);
    if (cached !== undefined) return cached;
    let os: string | undefined;
    try {
      os = await lookup(id);
    } catch {
      return undefined;
    }
    if (os) {
      if (known.size >= CACHE_LIMIT) known.clear();
      known.set(id, os);
    }
    return os;
  };
  return {
    async emit(event: AuditEventInput) {
      const device = event.device;
      if (!device?.id || device.os_type) return log.emit(event);
      const os = await osTypeOf(device.id);
      return log.emit(os ? { ...event, device: { ...device, os_type: os } } : event);
    },
    // A session's statements: the base is completed once. Until the device's OS is known
    // (the session's start looked it up), the caller emits instead.
    ...(log.statements
      ? {
          statements(base: AuditStatementBase) {
            const device = base.device;
            if (!device?.id || device.os_type) return log.statements!(base);
            const os = known.get(device.id);
            if (os === undefined) {
              void osTypeOf(device.id);
              return undefined;
            }
            return log.statements!({ ...base, device: { ...device, os_type: os } });
          },
        }
      : {}),
    search: (query) => log.search(query),
    close: () => log.close(),
  };
}
