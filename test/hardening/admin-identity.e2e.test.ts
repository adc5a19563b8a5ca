/**
 * Issue 15 item 11 against a real `warden start`: the admin identity `wctl` reads from the
 * data dir is replaced at a refresh (SIGHUP forces one) and at every restart, and only the
 * current one works; a copy of the previous one is refused (before, it stayed valid for 24 h).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, startWarden, type WardenProcess } from '@warden/testkit';

describe('issue 15 item 11: only the current admin identity works', () => {
  let w: WardenProcess;
  before(async () => {
    w = await startWarden();
  });
  after(async () => {
    await w?.stop();
  });

  /** A copy of the current admin identity file in its own data dir. */
  function keepCopy(name: string): string {
    const dir = join(w.dir, name);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(w.dataDir, 'admin-identity.json'), join(dir, 'admin-identity.json'));
    return dir;
  }
  const certOf = (dataDir: string) =>
    (JSON.parse(readFileSync(join(dataDir, 'admin-identity.json'), 'utf8')) as { cert_pem: string }).cert_pem;
  const wctlWith = (dataDir: string) =>
    runCli('wctl', ['get', 'roles', '--format=json'], { env: { ...w.env, WARDEN_DATA_DIR: dataDir } });

  /** Resolves once the data dir holds an admin identity other than `certPem`. */
  async function replaced(certPem: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      try {
        if (certOf(w.dataDir) !== certPem) return;
      } catch {
        // Renamed into place atomically; a read between two runs may find it missing.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('warden did not write a new admin identity');
  }

  test('after a refresh (SIGHUP) the previous admin identity is refused', async () => {
    const old = keepCopy('before-refresh');
    assert.equal((await wctlWith(old)).code, 0, 'the copy works while it is current');
    w.child.kill('SIGHUP');
    await replaced(certOf(old));
    const refused = await wctlWith(old);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /admin identity is not valid any more/);
    assert.equal((await wctlWith(w.dataDir)).code, 0, 'the new one works');
  });

  test('after a restart the previous admin identity is refused', async () => {
    const old = keepCopy('before-restart');
    await w.restart();
    assert.notEqual(certOf(w.dataDir), certOf(old));
    const refused = await wctlWith(old);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /admin identity is not valid any more/);
    const ok = await wctlWith(w.dataDir);
    assert.equal(ok.code, 0, ok.stderr);
  });
});
