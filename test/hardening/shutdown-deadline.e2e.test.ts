/**
 * Shutdown has a deadline (bin/shutdown.ts): a real `warden start` with client connections
 * that never finish their handshake — a TCP connection to the proxy that sends no ClientHello,
 * an SSH tunnel (`warden-ssh/1`) that never says where it goes, a TCP connection to the
 * built-in SSH node that sends no version line — still exits on SIGTERM, cutting them after
 * the grace period and logging how many. Regression: shutdown waited for such clients (up to
 * the handshake and login-grace timers, here set to a minute), so a test's `after` hook that
 * stops warden could hang a whole test file.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { freePort, startWarden } from '@warden/testkit';

/** Resolves once `socket` is connected (for TLS: the handshake is done). */
function opened(socket: Socket, event: 'connect' | 'secureConnect'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    socket.once(event, () => resolve(socket));
    socket.once('error', reject);
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));

describe('shutdown deadline', () => {
  test('held-open client connections do not keep warden from exiting: they are cut and counted', {
    timeout: 60_000,
  }, async () => {
    const sshPort = await freePort();
    const w = await startWarden({
      proxyLimitsYaml: '  handshake_timeout: 60s\n',
      configYaml: `ssh_service:\n  listen_addr: 127.0.0.1:${sshPort}\n  hostname: node-1\n  login_grace_time: 60s\n`,
    });
    const [host, port] = w.proxy.split(':') as [string, string];
    const held = await Promise.all([
      opened(netConnect(Number(port), host), 'connect'),
      opened(
        tlsConnect({ host, port: Number(port), ALPNProtocols: ['warden-ssh/1'], rejectUnauthorized: false }),
        'secureConnect',
      ),
      opened(netConnect(sshPort, host), 'connect'),
    ]);
    // Whatever the server says is read and dropped (a paused socket would never see the end).
    for (const s of held) s.on('error', () => {}).resume();
    const allClosed = Promise.all(held.map(closed));

    const t0 = Date.now();
    assert.equal(await w.stop(), 0, 'warden exits cleanly');
    const ms = Date.now() - t0;
    await allClosed;
    assert.ok(ms < 30_000, `warden stopped after ${ms} ms, not when the clients' 60 s timers fired`);
    assert.match(w.output(), /shutdown: cut 3 connection\(s\) still open after \d+ ms/);
  });

  test('without held connections, nothing is cut', { timeout: 60_000 }, async () => {
    const w = await startWarden();
    assert.equal(await w.stop(), 0);
    assert.doesNotMatch(w.output(), /shutdown: cut/);
  });
});
