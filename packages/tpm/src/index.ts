/**
 * @warden/tpm: TPM 2.0 structures, commands, transports and server-side verification.
 * Imports nothing internal. (Built in the TPM issue.)
 */
export const TPM_PACKAGE = '@warden/tpm';
