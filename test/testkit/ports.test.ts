/**
 * testkit's freePort: ports from below the kernel's ephemeral range (where no port-0 listener
 * or outgoing connection of another test can be given them meanwhile), each free when handed
 * out, never the same twice in one process, even to concurrent callers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort } from '@warden/testkit';

const ephemeralStart = () =>
  Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

const listen = (port: number) =>
  new Promise<ReturnType<typeof createServer>>((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res(s));
  });

test('freePort: below the ephemeral range, free, never the same port twice', async () => {
  const ports = await Promise.all(Array.from({ length: 50 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length, 'no port handed out twice');
  for (const port of ports) assert.ok(port >= 10_000 && port < ephemeralStart(), String(port));
  const servers = await Promise.all(ports.slice(0, 5).map(listen));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});
