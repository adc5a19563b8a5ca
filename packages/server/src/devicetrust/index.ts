/**
 * Device trust on the server (DESIGN §6): the device inventory (`DeviceInventory`: devices,
 * enrollment tokens stored hashed and spent once, enrollment and collected data, admin edits
 * and removal, each audited). The enrollment and authentication ceremonies build on it.
 * Who may import: the auth service, the proxy's routes and `bin/` (composition). Tested by
 * the colocated `*.test.ts` against MemoryBackend with a FakeClock, and end to end by
 * `test/devicetrust/`.
 */
export {
  DEFAULT_ENROLL_TOKEN_TTL_MS,
  type DeviceActor,
  DeviceInventory,
  type DeviceInventoryOptions,
  deviceLabel,
  ENROLL_TOKEN_PREFIX,
  INVALID_ENROLL_TOKEN_MESSAGE,
  MAX_ENROLL_TOKEN_TTL_MS,
} from './inventory';
