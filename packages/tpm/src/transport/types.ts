/** The transport contract: one command's bytes in, that command's response bytes out. */
export interface TpmTransport {
  /** Sends one marshaled command and resolves with the whole response. Calls are serialized. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Releases the connection or device; a later `send` may reopen it. */
  close(): Promise<void>;
  /** Where this transport goes, for messages (`swtpm:127.0.0.1:2321`, `/dev/tpmrm0`). */
  readonly description: string;
}

/** A TPM response starts with tag (2), size (4), response code (4). */
export const RESPONSE_HEADER_SIZE = 10;
/** No TPM answers more than this (TPM2_PT_MAX_RESPONSE_SIZE is 4 KiB on real TPMs). */
export const MAX_RESPONSE_SIZE = 64 * 1024;

/** Runs async tasks one after the other (a TPM talks to one command at a time). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
