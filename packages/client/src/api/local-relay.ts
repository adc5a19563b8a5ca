/**
 * A plain loopback listener whose every connection is dialed through the proxy and relayed
 * byte for byte: what `wsh proxy db --tunnel` and `wsh proxy app` share. The protocol
 * decides only how to dial (`dial`); pausing the local socket until the tunnel is up,
 * teardown in both directions and closing are done here once.
 * It should listen on loopback only: whoever reaches the port acts as the profile's user; or on
 * a Unix-domain socket (`path`), which only the user who started it may open (mode 0600) and
 * which costs the local hop less than loopback TCP.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { WardenError } from '@warden/api';

export interface LocalRelayOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /**
   * A Unix-domain socket to listen on instead of host:port (mode 0600; a stale socket file
   * left by a killed relay is replaced, a live one or any other file is refused).
   */
  path?: string;
  /** Opens the tunnel for one local connection. */
  dial: () => Promise<{ stream: Duplex }>;
  /** A connection could not be dialed (the local client just sees the connection close). */
  onError?: (e: Error) => void;
}

export interface LocalRelay {
  host: string;
  port: number;
  /** The Unix-domain socket, when listening on one (`host` and `port` are then unused). */
  path?: string;
  /** Open relayed connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * Copies `from` into `to` as it comes, pausing `from` while `to` is full, and ends `to` when
 * `from` ends: what `pipe()` does, with two listeners set once per connection instead of its
 * per-pipe machinery (errors and closes are handled by the caller).
 */
function relay(from: Duplex, to: Duplex): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
}

/**
 * @example
 *   const r = await startLocalRelay({ port: 5433, dial: () => dialDb(profile, route) });
 *   await r.close();
 */
export async function startLocalRelay(o: LocalRelayOptions): Promise<LocalRelay> {
  const host = o.host ?? '127.0.0.1';
  const open = new Set<Socket>();
  const server: Server = createServer((local) => {
    open.add(local);
    local.setNoDelay(true);
    local.pause();
    local.on('error', () => local.destroy());
    local.on('close', () => open.delete(local));
    o.dial().then(
      ({ stream }) => {
        if (local.destroyed) {
          stream.destroy();
          return;
        }
        stream.on('error', () => stream.destroy());
        stream.on('close', () => local.destroy());
        local.on('close', () => stream.destroy());
        relay(local, stream);
        relay(stream, local);
        local.resume();
        stream.resume();
      },
      (e: Error) => {
        o.onError?.(e);
        local.destroy();
      },
    );
  });
  if (o.path !== undefined) await listenUnix(server, o.path);
  else
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  const port = o.path !== undefined ? (o.port ?? 0) : (server.address() as { port: number }).port;
  return {
    host,
    port,
    ...(o.path !== undefined ? { path: o.path } : {}),
    get connections() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The longest socket path the kernel takes (sun_path is 108 bytes with its NUL on Linux). */
const MAX_SOCKET_PATH = 107;

/** Resolves whether something accepts connections on the Unix socket `path`. */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * Listens on the Unix socket `path`, readable and writable by this user only: it is created
 * under umask 177 (bound before anyone else can open it). A socket file nobody listens on (a
 * relay that was killed) is replaced; a live socket or any other file is refused.
 */
async function listenUnix(server: Server, path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `socket path too long (${Buffer.byteLength(path)} bytes, at most ${MAX_SOCKET_PATH}): ${path}`,
    );
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing) {
    if (!existing.isSocket())
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `${path} exists and is not a socket; not replacing it`,
      );
    if (await socketAlive(path))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `something already listens on ${path}`);
    unlinkSync(path);
  }
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The bind happens inside listen(), before the umask is restored.
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
      process.umask(umask);
    });
  } catch (e) {
    // libuv reports a missing directory as EACCES.
    const reason = existsSync(dirname(path)) ? (e as Error).message : 'its directory does not exist';
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `cannot listen on ${path}: ${reason}`);
  } finally {
    process.umask(umask);
  }
}
