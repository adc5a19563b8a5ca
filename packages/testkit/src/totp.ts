/** The current TOTP code for an otpauth:// URI, as an authenticator app would compute it. */
import { generateTotp } from '@warden/server';

export function totpFromUri(uri: string, now = Date.now()): string {
  const secret = new URL(uri).searchParams.get('secret');
  if (!secret) throw new Error(`no secret in ${uri}`);
  return generateTotp(secret, now);
}
