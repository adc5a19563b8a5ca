/**
 * The client side of bench:locks (bench/locks.ts): opens live sessions the way the bench
 * always has — SSH through the proxy to the Warden node and to the agentless OpenSSH node
 * (`dialNode` + `connectNode`), PostgreSQL and MySQL through a local tunnel per user and
 * database (`startDbTunnel`, as `wsh proxy db --tunnel` runs them, with `pg` / `mysql2`) — and
 * records, per session, the wall-clock time (`Date.now()`, the clock of a lock's `created_at`)
 * at which it first saw the session end.
 *
 * `--clients=1` runs a `SessionHolder` in the bench's own process. With `--clients=N` (N > 1)
 * the bench forks this file N times (`WARDEN_BENCH_LOCKS_CLIENT=1`, Node's IPC channel); each
 * child holds its share of the sessions in its own event loop, so that one session's end is
 * not timed behind the client-side work of every other session a lock ends (a real
 * deployment's 1,000 sessions belong to many client processes). A child says 'ready' once it
 * listens, then answers:
 *
 *   { type: 'open', homes, items, concurrency } → 'opened' per session, then 'open-done'
 *   { type: 'cpu' }                             → { type: 'cpu', cpuMs }
 *   { type: 'gc' }                              → 'gc-done' after a full garbage collection
 *   { type: 'warm-up', perProtocol }            → { type: 'warm-up-done', ended } (`warmUp`)
 *   { type: 'wait', kind, timeoutMs }           → { type: 'ended', kind, ends, cpuMs } once
 *                                                 every session of that kind it holds ended
 *                                                 (or the timeout passed)
 *   { type: 'close' }                           → 'closed', then it exits
 *
 * and { type: 'error', message } when something fails. `cpuMs` is the child's own CPU
 * (`process.cpuUsage`, user + system) so far.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  connectNode,
  type DbTunnel,
  dialNode,
  hostCaKeys,
  type LoadedProfile,
  ProfileStore,
  startDbTunnel,
} from '@warden/client';
import mysql from 'mysql2';
import pg from 'pg';

export const NODE = 'node-1';
export const AGENTLESS = 'agentless-1';
export const DB = { postgres: 'bench-pg', mysql: 'bench-mysql' } as const;
export const DB_USER = 'bench';
export const DB_NAME = 'bench';

export const KINDS = ['user', 'role', 'device', 'node'] as const;
export type Kind = (typeof KINDS)[number];
export const PROTOCOLS = ['ssh', 'openssh', 'postgres', 'mysql'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** One session to open: its place in the bench's layout, its kind and protocol. */
export interface Item {
  index: number;
  kind: Kind;
  protocol: Protocol;
}

/** What the client saw of one session: when it ended (Date.now()), and the message. */
export interface Ended {
  index: number;
  endedAt?: number;
  message?: string;
}

/** One live session as the client holds it. */
interface Live {
  kind: Kind;
  protocol: Protocol;
  /** Date.now() when the client saw the end. */
  endedAt?: number;
  /** What the client was told (lock message), when the protocol says anything. */
  message?: string;
  done: Promise<void>;
  /** Ends the session from the client's side (teardown). */
  close(): void;
  /**
   * Has the server end the session the way sessions end without a lock (`warmUp`): the
   * command's stdin closed, so it prints to stderr and exits; the database closing the
   * connection with a FATAL error.
   */
  endByServer(): void;
}

/** CPU time (user + system, ms) this process used so far. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure rejects. */
async function pool<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ---- sessions ----------------------------------------------------------------------------------

/** Resolves once every session in `lives` has ended, or after `timeoutMs`, whichever is first. */
async function allEndedWithin(lives: Pick<Live, 'done'>[], timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(lives.map((l) => l.done)),
    new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}

/** Resolves a session's `done` the first time the client sees it end. */
function endTracker(): {
  live: Pick<Live, 'done'>;
  end(message?: string): void;
  get: () => { endedAt?: number; message?: string };
} {
  let endedAt: number | undefined;
  let message: string | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  return {
    live: { done },
    end(m?: string) {
      if (endedAt !== undefined) {
        if (m && !message) message = m;
        return;
      }
      endedAt = Date.now();
      if (m) message = m;
      resolveDone();
    },
    get: () => ({ endedAt, message }),
  };
}

function lockLine(text: string): string | undefined {
  return /lock targeting [^\r\n]*/.exec(text)?.[0];
}

/** SSH through the proxy to `node`, a command that prints `ready` and then waits on stdin. */
async function openSsh(
  profile: LoadedProfile,
  node: string,
  kind: Kind,
  protocol: Protocol,
  command = 'echo ready; exec cat',
): Promise<Live> {
  const { stream, node: info } = await dialNode(profile, { node, login: 'root' });
  const ssh = await connectNode({
    stream,
    login: 'root',
    keyPem: profile.keyPem,
    sshCert: profile.sshCert,
    hostCaKeys: hostCaKeys(profile.knownHosts),
    hostPrincipals: [info.name, info.hostname],
    nodeName: node,
  });
  const ch = await ssh.exec(command);
  const t = endTracker();
  let stderr = '';
  ch.stderr.on('data', (d: Buffer) => {
    stderr += d;
    const m = lockLine(stderr);
    if (m) t.end(m);
  });
  await new Promise<void>((res, rej) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('ready')) {
        ch.off('data', onData);
        ch.off('close', onClose);
        res();
      }
    };
    const onClose = () => rej(new Error(`ssh to ${node} closed before the session started: ${stderr}`));
    ch.on('data', onData);
    ch.once('close', onClose);
  });
  ch.on('data', () => undefined);
  ch.once('close', () => t.end(lockLine(stderr)));
  void ssh.closed.then(() => t.end(lockLine(stderr)));
  stream.once('close', () => t.end(lockLine(stderr)));
  const live: Live = {
    kind,
    protocol,
    done: t.live.done,
    close: () => ssh.end(),
    endByServer: () => ch.end(),
  };
  return Object.defineProperties(live, {
    endedAt: { get: () => t.get().endedAt, enumerable: true },
    message: { get: () => t.get().message, enumerable: true },
  });
}

async function openPostgres(tunnel: DbTunnel, kind: Kind): Promise<Live> {
  const client = new pg.Client({
    host: tunnel.host,
    port: tunnel.port,
    user: DB_USER,
    database: DB_NAME,
    ssl: false,
    connectionTimeoutMillis: 30_000,
  });
  const t = endTracker();
  client.on('error', (e) => t.end(lockLine(e.message) ?? e.message));
  client.on('end', () => t.end());
  await client.connect();
  await client.query('SELECT 1');
  if (t.get().endedAt !== undefined) throw new Error(`postgres session ended at once: ${t.get().message}`);
  const live: Live = {
    kind,
    protocol: 'postgres',
    done: t.live.done,
    close: () => void client.end().catch(() => undefined),
    endByServer: () =>
      void client.query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => undefined),
  };
  return Object.defineProperties(live, {
    endedAt: { get: () => t.get().endedAt, enumerable: true },
    message: { get: () => t.get().message, enumerable: true },
  });
}

async function openMysql(tunnel: DbTunnel, kind: Kind): Promise<Live> {
  const conn = mysql.createConnection({
    host: tunnel.host,
    port: tunnel.port,
    user: DB_USER,
    database: DB_NAME,
  });
  const t = endTracker();
  conn.on('error', (e: Error) => t.end(lockLine(e.message) ?? e.message));
  conn.on('end', () => t.end());
  await new Promise<void>((res, rej) => {
    conn.query('SELECT 1', (err) => (err ? rej(err) : res()));
  });
  if (t.get().endedAt !== undefined) throw new Error(`mysql session ended at once: ${t.get().message}`);
  const live: Live = {
    kind,
    protocol: 'mysql',
    done: t.live.done,
    close: () => conn.destroy(),
    endByServer: () => conn.query('KILL CONNECTION_ID()', () => undefined),
  };
  return Object.defineProperties(live, {
    endedAt: { get: () => t.get().endedAt, enumerable: true },
    message: { get: () => t.get().message, enumerable: true },
  });
}

// ---- the sessions one client process holds --------------------------------------------------

/** Live sessions of one client process, opened from a share of the bench's layout. */
export class SessionHolder {
  readonly #lives = new Map<number, Live>();
  readonly #tunnels: DbTunnel[] = [];
  /** The local tunnels by user (kind) and database. */
  readonly #dbTunnels = {} as Record<Kind, Partial<Record<'postgres' | 'mysql', DbTunnel>>>;
  readonly #profiles: Record<Kind, LoadedProfile>;

  constructor(profiles: Record<Kind, LoadedProfile>) {
    this.#profiles = profiles;
  }

  /** Loads each kind's profile from its WARDEN_HOME (what a forked client does). */
  static fromHomes(homes: Record<Kind, string>): SessionHolder {
    const profiles = Object.fromEntries(
      KINDS.map((kind) => {
        const p = new ProfileStore(homes[kind]).load();
        if (!p) throw new Error(`no profile in ${homes[kind]}`);
        return [kind, p];
      }),
    ) as Record<Kind, LoadedProfile>;
    return new SessionHolder(profiles);
  }

  /**
   * Opens `items`, `concurrency` at a time: first one local tunnel per user and database this
   * share needs, then the sessions. Fails when a session ended before any lock.
   */
  async open(items: Item[], concurrency: number, onOpened: () => void = () => undefined): Promise<void> {
    const dbTunnels = this.#dbTunnels;
    for (const kind of KINDS) {
      dbTunnels[kind] = {};
      const protos = (['postgres', 'mysql'] as const).filter((p) =>
        items.some((i) => i.kind === kind && i.protocol === p),
      );
      const started = await Promise.all(
        protos.map((proto) =>
          startDbTunnel({ profile: this.#profiles[kind], db: DB[proto], dbUser: DB_USER, dbName: DB_NAME }),
        ),
      );
      protos.forEach((proto, i) => {
        this.#tunnels.push(started[i]!);
        dbTunnels[kind][proto] = started[i]!;
      });
    }
    await pool(items, concurrency, async ({ index, kind, protocol }) => {
      this.#lives.set(index, await this.#openOne(kind, protocol));
      onOpened();
    });
    const early = [...this.#lives.values()].filter((l) => l.endedAt !== undefined);
    if (early.length) {
      throw new Error(
        `${early.length} sessions ended before any lock (e.g. ${early[0]!.protocol}: ${early[0]!.message ?? 'no message'})`,
      );
    }
  }

  #openOne(kind: Kind, protocol: Protocol, sshCommand?: string): Promise<Live> {
    const profile = this.#profiles[kind];
    const tunnels = this.#dbTunnels[kind];
    if (protocol === 'ssh') return openSsh(profile, NODE, kind, protocol, sshCommand);
    if (protocol === 'openssh') return openSsh(profile, AGENTLESS, kind, protocol, sshCommand);
    const tunnel = tunnels?.[protocol];
    if (!tunnel) throw new Error(`no ${protocol} tunnel for the ${kind} user in this client`);
    return protocol === 'postgres' ? openPostgres(tunnel, kind) : openMysql(tunnel, kind);
  }

  /**
   * Before the locks: `perProtocol` more sessions of each protocol (the user kind's, on the
   * same tunnels), each then ended by the server the way sessions end without a lock — the
   * command's stdin closed, so it writes to stderr and exits; PostgreSQL's backend terminated
   * and MariaDB's connection killed by their own statement, the database closing the connection
   * with an error. Resolves with how many ended (all, or it throws).
   *
   * Why: until the first lock, no session of this process has ever ended, so the first lock
   * would also time this process's first run of its end paths (ssh2's channel close after a
   * stderr message, the drivers' error handling, the tunnels' teardown) — a cost a real client
   * pays once on its own machine, here paid by every client process on the cores warden
   * shares. In a deployment, sessions end every minute before a lock arrives. Warden's lock
   * path (the monitor's pass, the protocols' `end`) runs for the first time at the first lock
   * all the same: nothing here ends a session through it.
   *
   * A couple of ends per protocol runs that code once, interpreted; the first lock then ends
   * ~60 sessions per process in code V8 has not yet optimized, and those processes used more
   * CPU per end than at the later locks (where ssh, psql or mysql, native programs, have no
   * such warm-up at all). Ten per protocol, ended at once like a lock's, bring the first lock's
   * client CPU per end to the later locks' level (bench/README, eleventh session).
   */
  async warmUp(perProtocol: number, timeoutMs = 30_000): Promise<number> {
    if (perProtocol <= 0) return 0;
    const protocols = PROTOCOLS.filter(
      (p) => (p !== 'postgres' && p !== 'mysql') || this.#dbTunnels.user?.[p],
    );
    const lives: Live[] = [];
    await pool(
      // Protocols interleaved, so that the four at a time are one of each: a node's
      // MaxStartups-per-source (10) is not reached by four processes opening at once.
      Array.from({ length: perProtocol }, () => protocols).flat(),
      4,
      async (protocol) => {
        lives.push(
          await this.#openOne('user', protocol, 'echo ready; cat; echo "warm-up: session over" >&2'),
        );
      },
    );
    for (const l of lives) l.endByServer();
    await allEndedWithin(lives, timeoutMs);
    const open = lives.filter((l) => l.endedAt === undefined);
    if (open.length) {
      for (const l of open) l.close();
      throw new Error(
        `warm-up: ${open.length} of ${lives.length} sessions did not end (e.g. ${open[0]!.protocol})`,
      );
    }
    return lives.length;
  }

  /** Every session of `kind` this holder has, once all ended or `timeoutMs` passed. */
  async wait(kind: Kind, timeoutMs: number): Promise<Ended[]> {
    const group = [...this.#lives].filter(([, l]) => l.kind === kind);
    await allEndedWithin(
      group.map(([, l]) => l),
      timeoutMs,
    );
    return group.map(([index, l]) => ({
      index,
      ...(l.endedAt !== undefined ? { endedAt: l.endedAt } : {}),
      ...(l.message ? { message: l.message } : {}),
    }));
  }

  /** Ends every session from the client's side and closes the tunnels. */
  async close(): Promise<void> {
    for (const l of this.#lives.values()) l.close();
    await Promise.all(this.#tunnels.map((t) => t.close().catch(() => undefined)));
  }
}

// ---- a forked client process -----------------------------------------------------------------

/** What the bench sends a forked client. */
export type ToClient =
  | { type: 'open'; homes: Record<Kind, string>; items: Item[]; concurrency: number }
  | { type: 'cpu' }
  | { type: 'gc' }
  | { type: 'warm-up'; perProtocol: number }
  | { type: 'wait'; kind: Kind; timeoutMs: number }
  | { type: 'close' };

/** What a forked client answers. */
export type FromClient =
  | { type: 'ready' }
  | { type: 'opened' }
  | { type: 'open-done' }
  | { type: 'cpu'; cpuMs: number }
  | { type: 'gc-done' }
  | { type: 'warm-up-done'; ended: number }
  | { type: 'ended'; kind: Kind; ends: Ended[]; cpuMs: number }
  | { type: 'closed' }
  | { type: 'error'; message: string };

/**
 * A full garbage collection of this process, run before each lock: a client here holds a
 * quarter of the bench's sessions (~250 with `--clients=4`, 1,000 with 1), so opening them and
 * the previous lock's teardown leave a heap debt no real client of one session has, and V8
 * paid it with a major collection in the middle of a lock's ends (a 30–220 ms pause of that
 * client's event loop at load 14–26, every end it held recorded that much later). Paid before
 * the lock instead; the warden processes are left alone (their collections are real).
 */
export function fullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc ?? exposeGc();
  gc();
}

let exposed: (() => void) | undefined;
function exposeGc(): () => void {
  if (!exposed) {
    setFlagsFromString('--expose-gc');
    exposed = runInNewContext('gc') as () => void;
  }
  return exposed;
}

/** The environment variable that makes this file run as a forked client. */
export const CLIENT_ENV = 'WARDEN_BENCH_LOCKS_CLIENT';

function runChild(): void {
  const send = (m: FromClient) => process.send!(m);
  let holder: SessionHolder | undefined;
  let closing = false;
  const fail = (e: unknown) =>
    send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.on('message', (m: ToClient) => {
    switch (m.type) {
      case 'open':
        try {
          holder = SessionHolder.fromHomes(m.homes);
        } catch (e) {
          fail(e);
          return;
        }
        holder
          .open(m.items, m.concurrency, () => send({ type: 'opened' }))
          .then(() => send({ type: 'open-done' }), fail);
        return;
      case 'cpu':
        send({ type: 'cpu', cpuMs: ownCpuMs() });
        return;
      case 'gc':
        fullGc();
        send({ type: 'gc-done' });
        return;
      case 'warm-up':
        if (!holder) return fail(new Error('warm-up before open'));
        holder.warmUp(m.perProtocol).then((ended) => send({ type: 'warm-up-done', ended }), fail);
        return;
      case 'wait':
        if (!holder) return fail(new Error('wait before open'));
        holder
          .wait(m.kind, m.timeoutMs)
          .then((ends) => send({ type: 'ended', kind: m.kind, ends, cpuMs: ownCpuMs() }), fail);
        return;
      case 'close':
        closing = true;
        (holder?.close() ?? Promise.resolve()).finally(() => {
          send({ type: 'closed' });
          process.disconnect();
          // Sockets still closing must not keep the child alive past the bench.
          setTimeout(() => process.exit(0), 2_000).unref();
        });
        return;
    }
  });
  send({ type: 'ready' });
  // The bench went away: nothing to report to any more.
  process.on('disconnect', () => {
    if (closing) return;
    void holder?.close().finally(() => process.exit(0));
  });
}

if (process.env[CLIENT_ENV] === '1' && process.send) runChild();
