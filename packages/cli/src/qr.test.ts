import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qrCode } from './qr';

test('draws a square QR code of block characters, different for different text', async () => {
  const a = await qrCode('otpauth://totp/warden:alice?secret=JBSWY3DPEHPK3PXP&issuer=warden');
  const b = await qrCode('otpauth://totp/warden:bob?secret=JBSWY3DPEHPK3PXQ&issuer=warden');
  const lines = a.trimEnd().split('\n');
  assert.ok(lines.length >= 10, 'several rows');
  assert.ok(
    lines.every((l) => l.length === lines[0]!.length),
    'rows of equal width',
  );
  assert.match(a, /[▀▄█]/);
  assert.notEqual(a, b);
});
