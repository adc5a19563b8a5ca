/**
 * testkit's freePort: ports from below the kernel's ephemeral range (where no port-0 listener
 * or outgoing connection of another test can be given them meanwhile), each free when handed
 * out, never the same twice in one process, even to concurrent callers. waitForListener: waits
 * for a listener that comes late, gives up at once on an exited process and after its time.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { acceptsTcp, freePort, waitForListener } from '@warden/testkit';

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

test('waitForListener: a late listener is waited for; an exited process or the timeout fails with its log', async () => {
  const port = await freePort();
  assert.equal(await acceptsTcp(port), false);
  let server: ReturnType<typeof createServer> | undefined;
  const late = setTimeout(() => {
    void listen(port).then((s) => {
      server = s;
    });
  }, 150);
  const started = Date.now();
  await waitForListener(port, { name: 'late', log: () => '' });
  assert.ok(Date.now() - started >= 100, 'returned only once the listener was there');
  assert.equal(await acceptsTcp(port), true);
  clearTimeout(late);
  await new Promise((r) => server!.close(r));

  const gone = await freePort();
  await assert.rejects(
    waitForListener(gone, { name: 'sshd', log: () => 'bad config line 3', exited: () => true }),
    /^Error: sshd exited before it listened on \d+:\nbad config line 3$/,
  );
  const slow = Date.now();
  await assert.rejects(
    waitForListener(gone, { name: 'nginx', log: () => 'no log', timeoutMs: 200 }),
    /^Error: nginx did not listen on \d+ in 0\.2 s:\nno log$/,
  );
  assert.ok(Date.now() - slow >= 200, 'waited out its time');
});
