/** TOTP codes for an otpauth:// URI, as an authenticator app would compute them. */
import { generateTotp, totpStep } from '@warden/server';

function secretOf(uri: string): string {
  const secret = new URL(uri).searchParams.get('secret');
  if (!secret) throw new Error(`no secret in ${uri}`);
  return secret;
}

export function totpFromUri(uri: string, now = Date.now()): string {
  return generateTotp(secretOf(uri), now);
}

/**
 * An authenticator that never hands out a code of a step it already used (the server refuses
 * replays): it uses the current step, else the next one (within the server's ±1 window), else
 * waits for a fresh step.
 */
export class Authenticator {
  readonly #secret: string;
  #lastStep = -1;

  constructor(uri: string) {
    this.#secret = secretOf(uri);
  }

  /** Marks the code of `now`'s step as used (e.g. by signup). */
  markUsed(now = Date.now()): void {
    this.#lastStep = Math.max(this.#lastStep, totpStep(now));
  }

  async code(): Promise<string> {
    for (;;) {
      const now = Date.now();
      const step = totpStep(now);
      for (const s of [step, step + 1]) {
        if (s > this.#lastStep) {
          this.#lastStep = s;
          return generateTotp(this.#secret, s * 30_000);
        }
      }
      await new Promise((r) => setTimeout(r, (step + 1) * 30_000 - now + 50));
    }
  }
}
