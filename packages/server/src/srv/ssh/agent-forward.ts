/**
 * SSH agent forwarding on the node (`ssh -A`), when the user's certificate carries
 * `permit-agent-forwarding` (a role's `permit_agent_forwarding`): as sshd, a Unix socket in a
 * fresh private directory, owned by the login, named by `SSH_AUTH_SOCK` in the session's
 * environment; each connection to it opens an `auth-agent@openssh.com` channel back to the
 * client (OpenSSH PROTOCOL §2.1), and the two are piped. One socket per SSH connection,
 * removed when the connection closes.
 *
 * ssh2's server has no public call to open that channel: openAgentChannel uses its channel
 * manager and `Protocol.openssh_authAgent`, checked before use (fail closed: no socket, so the
 * session gets no agent). Who may import: this folder. Tested end to end in
 * `test/ssh-forwarding.e2e.test.ts` with OpenSSH's `ssh -A` and `ssh-add`.
 */
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Channel, Connection } from 'ssh2';
import type { Logger } from '../../log';
import type { DaemonUser, LocalUser } from './login';

/** ssh2's defaults for channels it opens (lib/Channel.js MAX_WINDOW, PACKET_SIZE). */
const WINDOW = 2 * 1024 * 1024;
const PACKET = 32 * 1024;

interface ConnInternals {
  _chanMgr?: { add(cb: unknown): number; remove(id: number): void };
  _protocol?: { openssh_authAgent?(chan: number, window: number, packet: number): void };
}

/** Opens an `auth-agent@openssh.com` channel to the client. */
export function openAgentChannel(conn: Connection, cb: (err: Error | undefined, ch?: Channel) => void): void {
  const c = conn as unknown as ConnInternals;
  const mgr = c._chanMgr;
  const proto = c._protocol;
  if (!mgr || typeof mgr.add !== 'function' || typeof proto?.openssh_authAgent !== 'function') {
    cb(new Error('ssh2 internals changed (_chanMgr, openssh_authAgent): cannot forward the agent'));
    return;
  }
  // ssh2 resolves the channel's confirmation through the function it stored, by its `type`.
  const wrapper = Object.assign((err: Error | undefined, ch?: Channel) => cb(err, ch), {
    type: 'auth-agent@openssh.com',
  });
  const id = mgr.add(wrapper);
  if (id === -1) {
    cb(new Error('no free channels'));
    return;
  }
  proto.openssh_authAgent(id, WINDOW, PACKET);
}

/**
 * @example
 *   const agent = new AgentForwarder(conn, user, daemon, logger);
 *   env.SSH_AUTH_SOCK = agent.socketPath(); // on the session's auth-agent-req
 *   conn.on('close', () => agent.close());
 */
export class AgentForwarder {
  #server: Server | undefined;
  #dir: string | undefined;
  #path: string | undefined;
  readonly #clients = new Set<Socket>();
  readonly #conn: Connection;
  readonly #user: LocalUser;
  readonly #daemon: DaemonUser;
  readonly #logger: Logger;

  constructor(conn: Connection, user: LocalUser, daemon: DaemonUser, logger: Logger) {
    this.#conn = conn;
    this.#user = user;
    this.#daemon = daemon;
    this.#logger = logger;
  }

  /**
   * The socket's path, listening when this returns (bind and listen on a Unix path happen
   * synchronously in Node), so a command started right after the request can use it.
   */
  socketPath(): string {
    if (this.#path) return this.#path;
    const dir = mkdtempSync(join(tmpdir(), 'warden-agent-'));
    this.#dir = dir;
    const path = join(dir, `agent.${process.pid}`);
    const server = createServer((sock) => this.#relay(sock));
    server.on('error', (e) => this.#logger.debug({ err: e }, 'agent forwarding socket error'));
    server.listen(path);
    this.#server = server;
    chmodSync(path, 0o600);
    chmodSync(dir, 0o700);
    if (this.#daemon.uid !== this.#user.uid) {
      chownSync(path, this.#user.uid, this.#user.gid);
      chownSync(dir, this.#user.uid, this.#user.gid);
    }
    this.#path = path;
    return path;
  }

  #relay(sock: Socket): void {
    this.#clients.add(sock);
    sock.once('close', () => this.#clients.delete(sock));
    sock.on('error', () => undefined);
    sock.pause();
    openAgentChannel(this.#conn, (err, ch) => {
      if (err || !ch) {
        sock.destroy();
        return;
      }
      ch.on('error', () => undefined);
      sock.once('close', () => ch.close());
      ch.once('close', () => sock.destroy());
      sock.pipe(ch);
      ch.pipe(sock);
      sock.resume();
    });
  }

  close(): void {
    for (const s of this.#clients) s.destroy();
    this.#server?.close();
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#server = undefined;
    this.#dir = undefined;
    this.#path = undefined;
  }
}
