/**
 * A smoke run of `npm run bench:locks` (bench/locks.ts) with 8 sessions on the SQLite backend:
 * SSH to the Warden node and to an agentless OpenSSH node, PostgreSQL and MySQL, held by four
 * users in two forked client processes (`--clients=2`, each the same mix of kinds); one lock
 * per target kind (user, role, device, node). Every session must end, after
 * its own lock and with a measured latency, and show that lock's message — so this fails when
 * any path stops enforcing locks (the proxy's, the node's, db_service's), not when the machine
 * is slow (no time limit is asserted beyond the bench's own 20 s "never ended" bound). The
 * two-replica PostgreSQL run is left to the bench itself (test/ha/replicas.e2e.test.ts covers
 * a lock across replicas).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { requireMariaDb, requirePostgres, requireTool } from '@warden/testkit';

const root = resolve(import.meta.dirname, '../..');
const checks = [
  requireTool('sshd'),
  requireTool('swtpm'),
  requireTool('swtpm_setup'),
  requirePostgres(),
  requireMariaDb(),
];
const skip = checks.find((c) => c.skip)?.skip ?? false;

interface SessionResult {
  backend: string;
  kind: string;
  protocol: string;
  client: number;
  ended: boolean;
  ms?: number;
  early: boolean;
  message?: string;
}

test('bench:locks --sessions=8: every kind of lock ends every session it targets', {
  skip,
  timeout: 300_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-locks-test-'));
  try {
    const json = join(dir, 'locks.json');
    const res = await new Promise<{ code: number | null; out: string }>((done, fail) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          join(root, 'bench/locks.ts'),
          '--sessions=8',
          '--backend=sqlite',
          '--clients=2',
          '--timeout-s=20',
          '--warm-up=2',
          `--json=${json}`,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
      });
      child.stderr.on('data', (c) => {
        out += c;
      });
      child.on('error', fail);
      child.on('close', (code) => done({ code, out }));
    });
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /^verdict \(bench:locks\): /m);
    assert.match(res.out, /^node \(--node=node-1\) +2 /m, 'a row per kind');
    assert.match(res.out, /held by 2 client processes/);
    // --warm-up=2: each client had the server end 2 sessions per protocol it can
    // reach (at least the two SSH ones) before the locks, none of them counted below; and two
    // locks on a user with no sessions were made and removed (had one ended a session, the
    // checks below would see it end early or with the wrong message).
    const warmed =
      /; (\d+) more ended by the server and (\d+) locks on a user with no sessions made and removed before the locks/.exec(
        res.out,
      );
    assert.ok(warmed && Number(warmed[1]) >= 8, `warm-up: ${warmed?.[0] ?? 'not reported'}`);
    assert.equal(Number(warmed[2]), 2, 'warm-up locks');

    const { clients, sessions, locks } = JSON.parse(readFileSync(json, 'utf8')) as {
      clients: number;
      sessions: SessionResult[];
      locks: { kind: string; pass?: { lockAgeMs?: number; ms: number; cpuMs: number } }[];
    };
    // The session monitor's pass is read from the warden's log line for every lock.
    for (const l of locks) {
      assert.ok(l.pass && Number.isFinite(l.pass.lockAgeMs) && l.pass.ms > 0, `pass of ${JSON.stringify(l)}`);
    }
    assert.equal(sessions.length, 8);
    // Both client processes held sessions, one of each kind each (the deal keeps the mix).
    assert.equal(clients, 2);
    for (const client of [0, 1]) {
      assert.deepEqual(
        sessions
          .filter((s) => s.client === client)
          .map((s) => s.kind)
          .sort(),
        ['device', 'node', 'role', 'user'],
        `kinds of client ${client}`,
      );
    }
    const layout = sessions.map((s) => `${s.kind}/${s.protocol}`).sort();
    assert.deepEqual(
      layout,
      [
        'device/ssh',
        'device/openssh',
        'node/ssh',
        'node/ssh',
        'role/mysql',
        'role/postgres',
        'user/openssh',
        'user/ssh',
      ].sort(),
    );
    const targets: Record<string, string> = {
      user: 'User:"locked-user"',
      role: 'Role:"bench-locked"',
      device: 'Device:"',
      node: 'Node:"node-1"',
    };
    for (const s of sessions) {
      const what = `${s.kind}/${s.protocol}: ${JSON.stringify(s)}`;
      assert.equal(s.ended, true, `ended: ${what}`);
      assert.equal(s.early, false, `not before its lock: ${what}`);
      assert.ok(Number.isFinite(s.ms) && s.ms! >= 0 && s.ms! < 20_000, `latency measured: ${what}`);
      // Every path says which lock ended it: the node and the proxy (agentless) in the SSH
      // channel, db_service in the protocol's error.
      assert.ok(s.message?.startsWith(`lock targeting ${targets[s.kind]}`), `lock message: ${what}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
