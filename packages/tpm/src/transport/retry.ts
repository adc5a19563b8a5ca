/**
 * An interceptor around any transport: resends a command the TPM answered with
 * TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING (swtpm answers RETRY to the first ECDSA
 * sign after start), with a growing pause, a bounded number of times.
 */
import { TpmError } from '../errors';
import { decodeResponseCode, isRetryable } from '../response-code';
import { RESPONSE_HEADER_SIZE, type TpmTransport } from './types';

export interface RetryOptions {
  /** Total sends, the first included (default 10). */
  attempts?: number;
  /** Pause before the first resend (default 5 ms), doubled each time up to 1 s. */
  delayMs?: number;
  /** For tests: how to wait. */
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function withRetry(inner: TpmTransport, opts: RetryOptions = {}): TpmTransport {
  const attempts = Math.max(1, opts.attempts ?? 10);
  const sleep = opts.sleep ?? realSleep;
  return {
    description: inner.description,
    close: () => inner.close(),
    async send(command: Uint8Array): Promise<Uint8Array> {
      let delay = opts.delayMs ?? 5;
      for (let i = 1; ; i++) {
        const response = await inner.send(command);
        if (response.length < RESPONSE_HEADER_SIZE) return response;
        const rc = new DataView(response.buffer, response.byteOffset).getUint32(6);
        if (!isRetryable(rc)) return response;
        if (i >= attempts) {
          throw new TpmError(
            'TPM_ERR_RETRIES_EXHAUSTED',
            `${inner.description}: still busy after ${attempts} tries`,
            {
              response: decodeResponseCode(rc),
            },
          );
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
    },
  };
}
