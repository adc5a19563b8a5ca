/** A QR code drawn with block characters, for the TOTP URI at signup on a terminal. */
export async function qrCode(text: string): Promise<string> {
  const mod = (await import('qrcode-terminal')) as unknown as {
    default?: { generate(t: string, o: { small: boolean }, cb: (s: string) => void): void };
    generate(t: string, o: { small: boolean }, cb: (s: string) => void): void;
  };
  const qr = mod.default ?? mod;
  return new Promise((resolve) => qr.generate(text, { small: true }, (s) => resolve(`${s}\n`)));
}
