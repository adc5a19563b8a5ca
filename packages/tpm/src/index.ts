/**
 * @warden/tpm: a TPM 2.0 library — structures (marshal/), transports to a TPM (transport/),
 * the commands device trust needs (commands/), and server-side verification that needs no
 * TPM (verify/). Imports nothing internal, only node built-ins.
 * Who may import: server and client (DESIGN §2); tests under test/ import it as @warden/tpm.
 * How it is tested: unit tests beside the code (no TPM needed), swtpm-driven tests and the
 * tpm2-tools cross-checks under test/tpm/. See packages/tpm/README.md.
 */

export * from './commands';
export * from './constants';
export { isTpmError, type ResponseCodeInfo, TpmError, type TpmErrorCode, tpmErrorCatalogue } from './errors';
export { digestSize, hashName } from './hash';
export * from './marshal';
export { decodeResponseCode, describeResponseCode, isRetryable, TPM_RC } from './response-code';
export * from './transport';
export * from './verify';
