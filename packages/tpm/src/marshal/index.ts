/**
 * marshal: TPM 2.0 wire structures (big-endian, TPM2B size prefixes, TPML counts) and
 * Names. Pure functions over bytes; no I/O. Every parser fails with `TPM_ERR_MARSHAL` (or
 * `TPM_ERR_UNSUPPORTED` for an algorithm it does not model) — never a crash or a large
 * allocation.
 * Who may import: commands/, verify/ and the package root.
 * Tested by structures.test.ts (round trips, known bytes from swtpm) and fuzz.test.ts.
 */
export { bytesEqual, concatBytes, fromHex, Reader, toHex, Writer } from './buffer';
export { handleName, nvName, objectName } from './name';
export * from './structures';
