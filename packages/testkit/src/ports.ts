/**
 * A free TCP port for a process that must be told its port before it starts (PostgreSQL,
 * MariaDB, swtpm, sshd, a warden config). Where the listener can take port 0 and say which
 * port it got, a test does that instead: no port handed out here is as safe as that.
 *
 * A port found free can be taken before the process binds it. This makes that unlikely: the
 * port comes from below the kernel's ephemeral range (`ip_local_port_range`), which port-0
 * listeners and outgoing connections of every other test draw from; it is random, so test
 * processes running side by side rarely try the same one; and it is never handed out twice
 * by one process.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const LOWEST = 10_000;
const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (32768 where it cannot be read). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether nothing listens on 127.0.0.1:`port` (a listener there for a moment says so). */
function canListen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => res(true)));
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      res(true);
    });
    s.on('error', () => res(false));
  });
}

/**
 * Resolves once the process `name` started accepts TCP connections on 127.0.0.1:`port`
 * (polled every 50 ms); fails at once when `exited()` says it is gone, or after `timeoutMs`,
 * with `log()` (its output so far).
 */
export async function waitForListener(
  port: number,
  o: { name: string; log: () => string; exited?: () => boolean; timeoutMs?: number },
): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await acceptsTcp(port)) return;
    if (o.exited?.()) throw new Error(`${o.name} exited before it listened on ${port}:\n${o.log()}`);
    if (Date.now() > until)
      throw new Error(`${o.name} did not listen on ${port} in ${timeoutMs / 1000} s:\n${o.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port on 127.0.0.1 that nothing listens on (see the file's comment for how it is chosen). */
export async function freePort(): Promise<number> {
  const end = ephemeralStart();
  for (let tries = 0; tries < 200; tries++) {
    const port = randomInt(LOWEST, end);
    if (handedOut.has(port)) continue;
    handedOut.add(port); // before the check: a concurrent call must not pick it meanwhile
    if (await canListen(port)) return port;
    handedOut.delete(port);
  }
  throw new Error(`freePort: no free port found between ${LOWEST} and ${end}`);
}
