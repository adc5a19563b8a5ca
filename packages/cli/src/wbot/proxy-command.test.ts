import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { proxySshCommandLine } from './proxy-command';

test('the ProxyCommand of a bundled wbot.js is dist/wsh-proxy-ssh.js; from the sources it is wsh.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden dist-'));
  try {
    const wbotJs = join(dir, 'wbot.js');
    writeFileSync(wbotJs, '');
    // Built without the one-file ProxyCommand: the wsh beside wbot.
    assert.equal(proxySshCommandLine('/usr/bin/node', [], wbotJs), `/usr/bin/node '${join(dir, 'wsh.js')}'`);
    writeFileSync(join(dir, 'wsh-proxy-ssh.js'), '');
    assert.equal(
      proxySshCommandLine('/usr/bin/node', [], wbotJs),
      `env -u NODE_EXTRA_CA_CERTS SSL_CERT_FILE=/dev/null SSL_CERT_DIR=/dev/null /usr/bin/node --use-openssl-ca '${join(dir, 'wsh-proxy-ssh.js')}'`,
    );
    // From the sources (tsx): wsh.ts beside wbot.ts, with node's flags.
    const wbotTs = join(dir, 'wbot.ts');
    writeFileSync(wbotTs, '');
    assert.equal(
      proxySshCommandLine('/usr/bin/node', ['--import', 'tsx'], wbotTs),
      `/usr/bin/node --import tsx '${join(dir, 'wsh.ts')}'`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
