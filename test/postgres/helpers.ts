/**
 * Shared pieces of the PostgreSQL tests: opening backends on the test server, reading watch
 * events, waiting for a condition, and running `replica.child.ts`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Backend, BackendEvent, Watcher } from '@warden/server';

export const CHILD = fileURLToPath(new URL('./replica.child.ts', import.meta.url));

export function keyOf(e: BackendEvent): string {
  return e.type === 'put' ? e.item.key : e.key;
}

export function brief(e: BackendEvent): string {
  return e.type === 'put' ? `${e.rev} put ${e.item.key}=${e.item.value}` : `${e.rev} delete ${e.key}`;
}

/** Reads events until `done` says so (inclusive); fails if the watcher ends first. */
export async function readUntil(
  w: Watcher,
  done: (e: BackendEvent, all: BackendEvent[]) => boolean,
): Promise<BackendEvent[]> {
  const it = w[Symbol.asyncIterator]();
  const out: BackendEvent[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) assert.fail(`watcher ended after ${out.map(brief).join(', ')}`);
    out.push(r.value);
    if (done(r.value, out)) return out;
  }
}

/** Asserts the events are exactly revisions first, first+1, … with nothing skipped or repeated. */
export function assertContiguous(events: BackendEvent[], first: number): void {
  events.forEach((e, i) => {
    assert.equal(e.rev, first + i, `event ${i} should be revision ${first + i}: ${brief(e)}`);
  });
}

/** waitFor(what, cond, limitMs = 20 s): polls `cond` every 50 ms until it holds. */
export { waitUntil as waitFor } from '@warden/testkit';

export interface ChildReplica {
  child: ChildProcess;
  /** Resolves with the first JSON message of `type`. */
  message(type: string): Promise<Record<string, unknown>>;
  exited: Promise<NodeJS.Signals | number | null>;
  stderr(): string;
}

export function startChild(env: Record<string, string>): ChildReplica {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
  });
  const messages: Record<string, unknown>[] = [];
  const waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  let partial = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const msg = JSON.parse(line) as Record<string, unknown>;
      messages.push(msg);
      for (const w of waiters.filter((x) => x.type === msg.type)) w.resolve(msg);
    }
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(signal ?? code)),
  );
  return {
    child,
    exited,
    stderr: () => err,
    message(type: string) {
      const found = messages.find((m) => m.type === type);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        waiters.push({ type, resolve });
        void exited.then((how) => reject(new Error(`the child exited (${how}) before "${type}":\n${err}`)));
      });
    },
  };
}

/** Closes every backend (ignoring errors), for t.after. */
export async function closeAll(backends: Backend[]): Promise<void> {
  await Promise.all(backends.map((b) => b.close().catch(() => undefined)));
}

export interface TcpProxy {
  port: number;
  /** Resets every proxied connection (both sides), as a network failure would. */
  cutAll(): void;
  /** Stops forwarding, without closing anything (a silent partition); new connections hang too. */
  freeze(): void;
  /** Forwards again, queued bytes and waiting connections included. */
  thaw(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `targetPort`, so a test can break connections mid-query. */
export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const waiting: Socket[] = [];
  const forward = (inbound: Socket) => {
    const outbound = connect(targetPort, '127.0.0.1');
    for (const [a, b] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      open.add(a);
      pairs.add([a, b]);
      a.on('close', () => open.delete(a));
      a.on('error', () => b.destroy());
      a.pipe(b);
    }
  };
  const server = createServer((inbound) => {
    if (frozen) {
      open.add(inbound);
      inbound.on('error', () => undefined);
      waiting.push(inbound);
    } else {
      forward(inbound);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cutAll() {
      for (const s of open) s.resetAndDestroy();
    },
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        a.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const [a, b] of pairs) if (!a.destroyed && !b.destroyed) a.pipe(b);
      for (const inbound of waiting.splice(0)) if (!inbound.destroyed) forward(inbound);
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
