/**
 * `warden start`'s banner names the address the SSH service really listens on. Port 0 is not
 * a valid `ssh_service.listen_addr` in warden.yaml, so the kernel-chosen port is reached
 * in process: `start` with the parsed config's SSH port set to 0 must print the bound port
 * (where an SSH server answers), not `:0`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { freePort } from '@warden/testkit';
import { start } from '../packages/server/src/bin';
import { parseConfig } from '../packages/server/src/config';
import { createLogger } from '../packages/server/src/log';

/** The first line a TCP server at `port` sends (an SSH server: its version line). */
function firstLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl !== -1) {
        socket.destroy();
        resolve(text.slice(0, nl).trim());
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before a line: ${JSON.stringify(text)}`)));
  });
}

test('the SSH service on port 0: the banner prints the bound port, where SSH answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-banner-'));
  const parsed = parseConfig(
    `version: v1\ndata_dir: ${join(dir, 'data')}\nproxy_service:\n  listen_addr: 127.0.0.1:${await freePort()}\n` +
      'ssh_service:\n  listen_addr: 127.0.0.1:3022\n  hostname: node-0\n',
    'warden.yaml',
  );
  const config = {
    ...parsed,
    sshService: { ...parsed.sshService, listenAddr: { host: '127.0.0.1', port: 0 } },
  };
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c) => {
    out += c;
  });
  const logger = createLogger({ severity: 'error', format: 'text', stream: new PassThrough() });
  const running = await start(config, logger, { stdout, stderr: new PassThrough(), env: {} });
  try {
    const m = /SSH service listening on 127\.0\.0\.1:(\d+) as node "node-0"/.exec(out);
    assert.ok(m, out);
    const port = Number(m[1]);
    assert.notEqual(port, 0, 'the configured port, not the bound one');
    assert.match(await firstLine(port), /^SSH-2\.0-/);
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
