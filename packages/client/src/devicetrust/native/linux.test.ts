import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { dmiAssetTag, ekAssetTag, isValidDmiValue, linuxAssetTag, linuxDeviceData } from './linux';

function dmi(files: Record<string, string>): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'warden-dmi-'));
  for (const [name, value] of Object.entries(files)) writeFileSync(join(dir, name), value);
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('Linux asset tag (DESIGN §6)', () => {
  test('the first valid of chassis asset tag, product serial, board serial', () => {
    const cases: [Record<string, string>, string | undefined][] = [
      [{ chassis_asset_tag: 'C00AA0AAAA0A\n', product_serial: 'PS1', board_serial: 'BS1' }, 'C00AA0AAAA0A'],
      [{ chassis_asset_tag: 'Not Specified\n', product_serial: 'PS1\n', board_serial: 'BS1' }, 'PS1'],
      [{ chassis_asset_tag: '\n', product_serial: '', board_serial: 'BS1\n' }, 'BS1'],
      [{ product_serial: 'To Be Filled By O.E.M.', board_serial: 'BS 1' }, undefined],
      [{ chassis_asset_tag: 'None', board_serial: 'Default string' }, undefined],
      [{}, undefined],
    ];
    for (const [files, want] of cases) {
      const d = dmi(files);
      try {
        assert.equal(dmiAssetTag({ dmiDir: d.dir }), want, JSON.stringify(files));
      } finally {
        d.done();
      }
    }
  });

  test('unreadable files (product_serial is root-only) are skipped', () => {
    const read = (p: string) => (p.endsWith('board_serial') ? 'BOARD42' : undefined);
    assert.equal(dmiAssetTag({ dmiDir: '/x', readFile: read }), 'BOARD42');
  });

  test('without DMI values: ek: + base64url(SHA-256 of the EK SPKI DER), reading the EK only then', async () => {
    const spki = new Uint8Array([0x30, 0x03, 0x01, 0x02, 0x03]);
    const want = `ek:${createHash('sha256').update(spki).digest('base64url')}`;
    assert.equal(ekAssetTag(spki), want);
    assert.match(want, /^ek:[A-Za-z0-9_-]{43}$/);
    let reads = 0;
    const ek = async () => {
      reads++;
      return spki;
    };
    assert.equal(await linuxAssetTag(ek, { readFile: () => undefined }), want);
    assert.equal(reads, 1);
    assert.equal(
      await linuxAssetTag(ek, { readFile: (p) => (p.endsWith('chassis_asset_tag') ? 'TAG' : undefined) }),
      'TAG',
    );
    assert.equal(reads, 1, 'the EK is not read when DMI has a tag');
  });

  test('valid values: no whitespace, not empty, not a placeholder, bounded', () => {
    assert.ok(isValidDmiValue('ABC-123_x'));
    for (const bad of [undefined, '', 'A B', 'A\tB', 'none', 'N/A', 'x'.repeat(300)])
      assert.ok(!isValidDmiValue(bad), String(bad));
  });

  test('collected data: OS, asset tag as serial number, time, user, host', () => {
    const now = new Date('2026-03-01T10:00:00.000Z');
    const data = linuxDeviceData('TAG1', now, {
      readFile: (p) =>
        p === '/etc/os-release'
          ? 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
          : undefined,
    });
    assert.equal(data.os_type, 'linux');
    assert.equal(data.serial_number, 'TAG1');
    assert.equal(data.collect_time, '2026-03-01T10:00:00.000Z');
    assert.match(data.os_version ?? '', /^Debian GNU\/Linux 12 \(bookworm\), kernel /);
    assert.ok(data.hostname);
  });
});
