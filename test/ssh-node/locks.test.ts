/**
 * Locks end live sessions (issue 3 point 5), driven by the real OpenSSH client in a real
 * terminal and as a plain command: a lock created while the session runs writes
 * `ERROR: lock targeting … is in force: <message>` to the session and closes the connection;
 * sessions of other users go on; the end is audited with the reason. In `locking_mode:
 * strict`, a lock view that goes stale ends sessions as well.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AUTH_PREFERENCE_NAME, type LockResource } from '@warden/api';
import {
  type AccessViews,
  liveAccessChecker,
  SessionMonitor,
  silentLogger,
  systemClock,
} from '@warden/server';
import { captureOutput, requireTool, waitForText } from '@warden/testkit';
import * as pty from 'node-pty';
import { manualChanges } from '../support/manual-changes';
import { exited, type NodeFixture, startNode } from './node-fixture';

const skip = ['ssh', 'ssh-keygen'].map(requireTool).find((t) => t.skip)?.skip ?? false;

const waitFor = (read: () => string, pattern: RegExp, timeoutMs = 8000) =>
  waitForText(read, pattern, timeoutMs);

/** An interactive `ssh -tt` in a real terminal: its output so far, typing, and its exit code. */
function terminal(args: string[]) {
  const term = pty.spawn('ssh', [...args, '-tt'], {
    name: 'xterm',
    cols: 80,
    rows: 24,
    env: { ...process.env, TERM: 'xterm' } as Record<string, string>,
  });
  let out = '';
  term.onData((d) => {
    out += d;
  });
  return {
    out: () => out,
    write: (text: string) => term.write(text),
    exit: new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode))),
  };
}

describe('locks end live SSH sessions', { skip }, () => {
  let f: NodeFixture;

  before(async () => {
    f = await startNode();
  });
  after(() => f?.close());

  test('an interactive PTY session of the locked user ends with the message; others go on', async () => {
    const alice = await f.issue({ user: 'alice', logins: ['root'] });
    const bob = await f.issue({ user: 'bob', logins: ['root'] });
    const term = terminal(f.sshArgs(alice, 'root'));
    // Bob's long-running command must survive alice's lock.
    const bobRun = f.ssh(bob, 'root', ['sleep 1; echo bob-done']);
    // Quoted so that the terminal's echo of the typed line does not match, only the output.
    term.write("echo RE''ADY\r");
    await waitFor(term.out, /READY\r\n/);

    await f.lock({ user: 'alice' }, 'stop now');
    const code = await term.exit;
    assert.notEqual(code, 0);
    assert.match(term.out(), /\r\nERROR: lock targeting User:"alice" is in force: stop now\r\n/);
    assert.match(term.out(), /Connection to 127\.0\.0\.1 closed/);

    const bobRes = await bobRun;
    assert.equal(bobRes.code, 0, bobRes.stderr);
    assert.equal(bobRes.stdout, 'bob-done\n');

    // session.end is recorded when the hung-up shell has exited, which may be after the client left.
    const ended = async () =>
      (await f.audit.search({ types: ['session.end'], user: 'alice' })).find(
        (e) => e.terminated_by === 'lock targeting User:"alice" is in force: stop now',
      );
    for (let i = 0; i < 100 && !(await ended()); i++) await new Promise((r) => setTimeout(r, 50));
    const end = await ended();
    assert.ok(end, 'session.end with the lock as terminated_by');
    assert.equal(end.exit_signal, 'HUP');
  });

  test('a running command (no PTY) is ended: the message goes to stderr', async () => {
    const carol = await f.issue({ user: 'carol', roles: ['access'], logins: ['root'] });
    const child = spawn('ssh', [...f.sshArgs(carol, 'root'), 'echo started; sleep 30'], { stdio: 'pipe' });
    const out = captureOutput(child);
    await waitFor(out.stdout, /started/);
    await f.lock({ role: 'access', login: 'root' });
    const code = await exited(child);
    assert.equal(code, 255);
    assert.match(out.stderr(), /ERROR: lock targeting Role:"access", Login:"root" is in force/);
  });

  test('the lock event, delivered to the session monitor, is what ends a node session', async () => {
    // The node's monitor re-checks only when this test delivers the lock view's change: the
    // lock is in the node's view (its checker refuses new channels) while the open session
    // goes on; the delivery ends it at once with the message. Nothing else (no polling) can.
    let views: AccessViews | undefined;
    let monitor: SessionMonitor | undefined;
    const changes = manualChanges();
    const g = await startNode({
      accessFor: async (services) => {
        views = services.accessViews({ logger: silentLogger });
        await views.start();
        const checker = liveAccessChecker(views, { clock: systemClock });
        monitor = new SessionMonitor({
          checker,
          clock: systemClock,
          logger: silentLogger,
          changes: [changes.source],
        });
        return { checker, monitor };
      },
    });
    try {
      const erin = await g.issue({ user: 'erin', logins: ['root'] });
      // A connection that ended on its own leaves the monitor.
      assert.equal((await g.ssh(erin, 'root', ['true'])).code, 0);
      await waitFor(() => `registered: ${monitor!.size}`, /registered: 0/); // the server saw the close

      const term = terminal(g.sshArgs(erin, 'root'));
      term.write("echo RE''ADY\r");
      await waitFor(term.out, /READY\r\n/);
      assert.equal(monitor!.size, 1, 'the open connection is registered');

      const lock: LockResource = await g.lock({ user: 'erin' }, 'event-driven');
      await waitFor(() => String(views!.locks.get(lock.metadata.name) !== undefined), /true/);
      assert.ok(
        (await g.ssh(erin, 'root', ['true'])).stderr.includes('lock targeting User:"erin"'),
        'the node already knows the lock: a new connection is refused',
      );
      // …but the open session is untouched until the change is delivered.
      term.write("echo ST''ILL\r");
      await waitFor(term.out, /STILL\r\n/);
      assert.doesNotMatch(term.out(), /ERROR: lock targeting/);
      assert.equal(monitor!.size, 1);

      changes.deliver('the monitor subscribed to the change source');
      assert.equal(monitor!.size, 0, 'ended synchronously by the delivered change');
      assert.notEqual(await term.exit, 0);
      assert.match(term.out(), /\r\nERROR: lock targeting User:"erin" is in force: event-driven\r\n/);
    } finally {
      await g.close();
      monitor?.close();
      views?.close();
    }
  });

  test('locking_mode strict: a stale lock view ends sessions and refuses new ones', async () => {
    // A node whose lock view counts as stale at once when its watch breaks.
    const g = await startNode({ lockMaxStalenessMs: 0 });
    try {
      await g.services.authPreference.upsert({
        kind: 'cluster_auth_preference',
        version: 'v2',
        metadata: { name: AUTH_PREFERENCE_NAME },
        spec: {
          type: 'local',
          second_factor: 'otp',
          device_trust: { mode: 'off', auto_enroll: false },
          locking_mode: 'strict',
        },
      });
      const dave = await g.issue({ user: 'dave', logins: ['root'] });
      assert.equal((await g.ssh(dave, 'root', ['true'])).code, 0);
      const child = spawn('ssh', [...g.sshArgs(dave, 'root'), 'echo started; sleep 30'], { stdio: 'pipe' });
      const out = captureOutput(child);
      await waitFor(out.stdout, /started/);
      // An item under /locks/ that does not decode makes the view unhealthy (it can't know
      // whether that was a lock): with strictness 0 it is stale at once.
      await g.backend.put(`/locks/${randomUUID()}`, 'not a lock');
      assert.equal(await exited(child), 255);
      assert.match(out.stderr(), /ERROR: the lock view is stale and locking_mode is strict/);
      const again = await g.ssh(dave, 'root', ['true']);
      assert.match(again.stderr, /administratively prohibited: the lock view is stale/);
    } finally {
      await g.close();
    }
  });
});
