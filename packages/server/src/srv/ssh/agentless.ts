/**
 * Agentless OpenSSH nodes behind the proxy (DESIGN §4, issue 15 item 14). Such a node runs no
 * Warden code, so the proxy is its only gate: the node trusts only the `openssh` CA
 * (`TrustedUserCAKeys` = `wctl auth export --type=openssh`), and only the proxy gets that CA's
 * certificates — one per session, after the access checker allowed it. A user's own
 * certificate (user CA) opens nothing there, so no one reaches the node past locks and device
 * trust. The proxy ends the SSH connection from the client and opens its own to the node:
 *
 *   client (wsh ssh, or ssh via `wsh proxy ssh`)   proxy (this file)                      agentless sshd
 *     │ TLS tunnel; ssh-tunnel.ts decided access ──▶ │ TCP connect ───────────────────────────▶ │
 *     │ ◀── SSH host certificate for the node ────── │ (host CA; names = the node's ID and      │
 *     │      (host CA: what the client checks)       │  hostname, as for any node)              │
 *     │ ── userauth publickey: user certificate ───▶ │ user CA, same user and key as the TLS    │
 *     │                                              │ certificate, login among its principals  │
 *     │                                              │ fresh Ed25519 key + openssh certificate: │
 *     │                                              │ principal = login, 60 s, the user's      │
 *     │                                              │ permit-* ── userauth ──────────────────▶ │ trusts the openssh CA only
 *     │                                              │ ◀── host certificate (host CA) checked ─ │
 *     │ ══ session / direct-tcpip channels, relayed: pty, env, shell, exec, sftp, signals ════▶ │
 *     │ ◀── "\r\nERROR: lock targeting … in force\r\n", EOF, close (SessionMonitor → terminate)
 *
 * Why a fresh key the proxy holds rather than the user's key: signing for the user's key
 * would need the user's private key on the proxy to log in (or agent forwarding to it), and a
 * certificate for it that travelled to the client could be used there directly, past the
 * proxy, for as long as it is valid. The session key never leaves this process, lives as long
 * as the connection, and its certificate is good for one minute.
 *
 * Sessions are audited here (`session.start`/`session.end`, the node by ID and hostname); the
 * access decision is audited by ssh-tunnel.ts. Agent forwarding is relayed when the user's
 * certificate permits it (`permit-agent-forwarding`, from the roles); X11 and remote
 * forwarding are refused. Who may import: `proxy/` (through `srv/ssh/index.ts`) and tests. Tested against a
 * real OpenSSH sshd in `test/ssh-agentless.e2e.test.ts`.
 */
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type AuditEventInput,
  decodeSshCertificate,
  encodeSshPublicKey,
  parseSshCertificate,
  spkiFromKey,
  verifySshCertificate,
} from '@warden/api';
import { certificateKey, connectWithCertificates } from '@warden/api/ssh2-patch';
import ssh2, {
  type AuthContext,
  type ClientChannel,
  type Connection,
  type PseudoTtyInfo,
  type ServerChannel,
  type Session,
  type TcpipRequestInfo,
} from 'ssh2';
import type { Identity } from '../../access';
import { type AuditLog, writeAuditEvent } from '../../audit';
import type { CertAuthorities } from '../../ca';
import type { Clock } from '../../clock';
import { formatHostPort } from '../../config';
import type { Logger } from '../../log';
import { refuseChannels } from './channel-refusal';
import { type HostCertMaterial, hostCertMaterial, hostKeyEntries, presentHostCertificate } from './host-cert';
import { SSH_SIGNALS } from './session';
import { afterGrace, afterMessagesLeave, corked, endWithMessage } from './session-end';
import {
  type CertHolder,
  isCertificateAlgorithm,
  verifyClientSignature,
  verifyUserCertificate,
} from './user-cert';

export interface AgentlessOptions {
  cas: CertAuthorities;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  /** How long the node has for the SSH handshake and login (default 20 s). */
  upstreamTimeoutMs?: number;
}

/** An agentless node as the forwarder needs it. */
export interface AgentlessNode {
  /** The node resource's name (its ID). */
  id: string;
  hostname: string;
  labels?: Record<string, string>;
}

/** One session handed over by the proxy after the access checker allowed it. */
export interface AgentlessSession {
  /** The client's stream (the TLS tunnel), positioned at the client's first SSH byte. */
  stream: Duplex;
  /** A TCP connection to the node, already connected. */
  upstream: Socket;
  node: AgentlessNode;
  identity: Identity;
  login: string;
  clientAddr?: string;
}

/** What the proxy keeps of a session it handed over. */
export interface AgentlessHandle {
  /** Ends the session because of `message` (a lock): the user reads it, then the connection closes. */
  terminate(message: string): void;
}

/** Connection attempts with more failed authentications than this are dropped. */
const MAX_AUTH_FAILURES = 6;
/** A client that has not logged in within this long is dropped (as sshd's LoginGraceTime). */
const LOGIN_GRACE_MS = 30_000;
/** The proxy's host certificates for nodes are re-issued after this long (they live twice that). */
const HOST_CERT_TTL_MS = 2 * 60 * 60 * 1000;
/** After a lock ended a connection's sessions, how long before the connection itself is cut. */
const TERMINATE_GRACE_MS = 300;
/** Window and packet size of agent channels (ssh2's defaults for the channels it opens). */
const AGENT_WINDOW = 2 * 1024 * 1024;
const AGENT_PACKET = 32 * 1024;

interface Conn {
  s: AgentlessSession;
  conn: Connection;
  authFailures: number;
  holder?: CertHolder;
  /** The logged-in connection to the node (resolves once it is ready). */
  upstream?: Promise<ssh2.Client>;
  /** Why channels are refused: the node could not be reached or refused the proxy. */
  failure?: string;
  /** Set when a lock ends the connection. */
  ending?: string;
  sessions: Set<Relay>;
  forwards: Set<{ destroy(): void }>;
}

interface Relay {
  down?: ServerChannel;
  up?: ClientChannel;
  pty: boolean;
  end(message: string): void;
}

/**
 * @example
 *   const agentless = new AgentlessForwarder({ cas, audit, clock, logger });
 *   const handle = agentless.serve({ stream: tlsSocket, upstream: tcp, node, identity, login: 'root' });
 *   monitor.register({ identity, targets, protocol: 'ssh', end: (m) => handle.terminate(m) });
 */
export class AgentlessForwarder {
  readonly #o: AgentlessOptions;
  /** The proxy's host key for the client side (one per process), and a certificate per node. */
  readonly #hostKeyPem: string;
  readonly #hostPublic: KeyObject;
  readonly #material = new Map<string, { m: HostCertMaterial; renewAt: number }>();

  constructor(o: AgentlessOptions) {
    this.#o = o;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.#hostKeyPem = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    this.#hostPublic = publicKey;
  }

  /** Serves one session: the client's SSH connection ends here, a new one goes to the node. */
  serve(s: AgentlessSession): AgentlessHandle {
    const material = this.#hostMaterial(s.node);
    let c: Conn | undefined;
    const server = new ssh2.Server({ hostKeys: hostKeyEntries(material), ident: 'Warden' }, (conn) => {
      c = this.#accept(conn, s, material);
    });
    server.on('error', () => s.stream.destroy());
    s.upstream.on('error', () => undefined);
    server.injectSocket(s.stream as Socket);
    const grace = setTimeout(() => {
      if (!c?.holder) this.#cut(s);
    }, LOGIN_GRACE_MS);
    grace.unref();
    s.stream.once('close', () => clearTimeout(grace));
    return { terminate: (message) => (c ? this.#terminate(c, message) : this.#cut(s)) };
  }

  #hostMaterial(node: AgentlessNode): HostCertMaterial {
    const key = `${node.id}\n${node.hostname}`;
    const now = this.#o.clock.now();
    const cached = this.#material.get(key);
    if (cached && now < cached.renewAt) return cached.m;
    const line = this.#o.cas.issueHostSshCert({
      publicKey: this.#hostPublic,
      hostId: node.id,
      hostnames: [node.hostname],
      ttlMs: 2 * HOST_CERT_TTL_MS,
      now,
    });
    const m = hostCertMaterial(
      this.#hostKeyPem,
      parseSshCertificate(line).blob,
      encodeSshPublicKey(this.#hostPublic),
    );
    this.#material.set(key, { m, renewAt: now + HOST_CERT_TTL_MS });
    return m;
  }

  #accept(conn: Connection, s: AgentlessSession, material: HostCertMaterial): Conn {
    const c: Conn = { s, conn, authFailures: 0, sessions: new Set(), forwards: new Set() };
    try {
      presentHostCertificate(conn, material);
      refuseChannels(conn, (open) => this.#refusal(c, open.type));
    } catch (e) {
      this.#o.logger.error({ err: e }, 'the proxy cannot serve agentless sessions with this ssh2 version');
      conn.end();
      return c;
    }
    conn.on('authentication', (ctx) => this.#authenticate(c, ctx));
    conn.on('ready', () => {
      c.upstream = this.#connectUpstream(c);
      c.upstream.catch((e: Error) => {
        c.failure = e.message;
      });
    });
    conn.on('session', (accept, reject) => {
      if (!c.holder || c.ending) return reject();
      this.#session(c, accept());
    });
    conn.on('tcpip', (accept, reject, info) => this.#forward(c, accept, reject, info));
    // Remote forwarding and other global requests are not offered.
    conn.on('request', (_accept, reject) => reject?.());
    conn.on('error', (e) => this.#o.logger.debug({ err: e }, 'agentless ssh connection error'));
    conn.on('close', () => {
      for (const r of c.sessions) r.up?.close();
      for (const f of c.forwards) f.destroy();
      c.upstream?.then((client) => client.end()).catch(() => undefined);
      this.#cut(s);
    });
    return c;
  }

  #refusal(c: Conn, type: string): string | undefined {
    if (!c.holder) return undefined; // not authenticated: ssh2 refuses it itself
    if (c.ending) return c.ending;
    if (c.failure) return c.failure;
    if (type === 'direct-tcpip' && !('permit-port-forwarding' in c.holder.extensions))
      return 'port forwarding is not permitted by your certificate';
    if (type !== 'session' && type !== 'direct-tcpip') return `${type} channels are not supported`;
    return undefined;
  }

  /**
   * The client logs in with its Warden user certificate: the user CA's, for the user and key
   * of the TLS certificate the proxy already checked, for the login the proxy decided on.
   */
  #authenticate(c: Conn, ctx: AuthContext) {
    const reject = (why?: string) => {
      if (why) this.#o.logger.warn({ user: c.s.identity.user, why }, 'agentless ssh login refused');
      if (++c.authFailures >= MAX_AUTH_FAILURES) c.conn.end();
      ctx.reject(['publickey']);
    };
    if (ctx.method !== 'publickey' || c.holder) return reject();
    // Clients offer plain keys before their certificates: refuse those quietly.
    if (!isCertificateAlgorithm(ctx.key.algo)) return reject();
    let v: ReturnType<typeof verifyUserCertificate>;
    try {
      v = verifyUserCertificate(this.#o.cas, ctx.key.algo, ctx.key.data, this.#o.clock.now());
    } catch (e) {
      return reject((e as Error).message);
    }
    const { identity, login } = c.s;
    if (v.holder.user !== identity.user) return reject('the SSH certificate is for another user');
    if (ctx.username !== login || !v.holder.principals.includes(login))
      return reject(`the SSH login is not ${JSON.stringify(login)}`);
    if (identity.cert && !spkiFromKey(v.cert.publicKey).equals(identity.cert.publicKeyDer))
      return reject('the SSH certificate is not for the key of the TLS certificate');
    // A query without a signature: "would you accept this key?"
    if (!ctx.signature || !ctx.blob) return ctx.accept();
    if (!verifyClientSignature(v.cert, ctx.blob, ctx.signature))
      return reject('the signature does not match the certificate');
    c.holder = v.holder;
    ctx.accept();
  }

  /** Logs in to the node with a fresh key and a 60-second certificate from the openssh CA. */
  #connectUpstream(c: Conn): Promise<ssh2.Client> {
    const { s } = c;
    const holder = c.holder!;
    const node = JSON.stringify(s.node.hostname);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const sessionId = randomUUID();
    const key = certificateKey(
      privateKey,
      this.#o.cas.issueOpenSshSessionCert({
        publicKey,
        login: s.login,
        user: s.identity.user,
        sessionId,
        extensions: Object.keys(holder.extensions),
      }),
      'the session certificate is not for the session key',
    );
    const hostCaKeys = this.#o.cas.sshPublicKeys('host');
    const names = [s.node.hostname, s.node.id];
    const client = new ssh2.Client();
    let hostError: string | undefined;
    return new Promise<ssh2.Client>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        client.end();
        s.upstream.destroy();
        const msg = hostError ?? upstreamError((e as Error)?.message ?? String(e), node, s.login);
        this.#o.logger.warn({ node: s.node.hostname, err: msg }, 'agentless node refused the proxy');
        reject(new Error(msg));
      };
      client.on('error', fail);
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        client.off('error', fail);
        client.on('error', (e) => this.#o.logger.debug({ err: e }, 'agentless upstream error'));
        client.once('close', () => c.conn.end());
        resolve(client);
      });
      connectWithCertificates(
        client,
        {
          sock: s.upstream,
          username: s.login,
          // Used only when a session asked for agent forwarding (and was allowed to).
          agent: this.#agentFor(c),
          readyTimeout: this.#o.upstreamTimeoutMs ?? 20_000,
        },
        {
          key,
          checkHost: (blob) => {
            const cert = decodeSshCertificate(blob);
            verifySshCertificate(cert, hostCaKeys, { now: this.#o.clock.now(), type: 'host' });
            if (!names.some((n) => cert.validPrincipals.includes(n)))
              throw new Error(`its host certificate is for ${JSON.stringify(cert.validPrincipals)}`);
            return cert;
          },
          hostRefused: (e) => {
            hostError = `the proxy refuses node ${node}: ${(e as Error).message}`;
            fail(e);
          },
          failed: fail,
        },
      );
    });
  }

  /**
   * The "agent" the connection to the node forwards to: each `auth-agent@openssh.com` channel
   * the node opens becomes one the proxy opens to the client (whose ssh has the real agent).
   * ssh2's server has no call for that channel type, so it is opened as its `openChannel`
   * does for the others (checked: fail closed, the node's channel is refused).
   */
  #agentFor(c: Conn): ssh2.BaseAgent {
    const logger = this.#o.logger;
    return new (class extends ssh2.BaseAgent {
      // Identities and signatures stay with the client's agent: only its stream is relayed.
      override getIdentities(cb: (err: Error | undefined) => void): void {
        cb(new Error('the proxy holds no agent keys'));
      }
      override sign(_key: unknown, _data: Buffer, ...rest: unknown[]): void {
        const cb = rest.find((r) => typeof r === 'function') as ((err: Error) => void) | undefined;
        cb?.(new Error('the proxy holds no agent keys'));
      }
      override getStream(cb: (err: Error | undefined, stream?: Duplex) => void) {
        const conn = c.conn as unknown as {
          _chanMgr?: { add(wrapper: unknown): number };
          _protocol?: { openssh_authAgent?(chan: number, window: number, packet: number): void };
        };
        if (!c.holder || !('permit-agent-forwarding' in c.holder.extensions) || c.ending)
          return cb(new Error('agent forwarding is not permitted'));
        if (
          typeof conn._chanMgr?.add !== 'function' ||
          typeof conn._protocol?.openssh_authAgent !== 'function'
        ) {
          logger.error({}, 'ssh2 internals changed: the proxy cannot forward agents to agentless nodes');
          return cb(new Error('agent forwarding unavailable'));
        }
        const wrapper = Object.assign((err: Error | undefined, stream: Duplex) => cb(err, stream), {
          type: 'auth-agent@openssh.com',
        });
        const chan = conn._chanMgr.add(wrapper);
        if (chan === -1) return cb(new Error('no free channels'));
        conn._protocol.openssh_authAgent(chan, AGENT_WINDOW, AGENT_PACKET);
      }
    })();
  }

  // ---- sessions ------------------------------------------------------------------------

  #session(c: Conn, session: Session): void {
    const holder = c.holder!;
    let pty: PseudoTtyInfo | undefined;
    const env: Record<string, string> = {};
    let started = false;
    let agent = false;
    const relay: Relay = {
      pty: false,
      end: (message) => {
        if (!relay.down?.writable) return;
        endWithMessage(relay.down, relay.pty, message);
        // The node's side (its sshd hangs up the process) once the messages are out.
        const up = relay.up;
        if (up) afterMessagesLeave(() => up.close());
      },
    };
    c.sessions.add(relay);
    session.on('close', () => {
      c.sessions.delete(relay);
      relay.up?.close();
    });
    session.on('pty', (accept, reject, info) => {
      if (started || !('permit-pty' in holder.extensions)) return reject?.();
      pty = info;
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      if (started) return reject?.();
      env[info.key] = info.val;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (relay.up) guard(() => relay.up?.setWindow(info.rows, info.cols, info.height, info.width));
      else if (pty)
        Object.assign(pty, { rows: info.rows, cols: info.cols, height: info.height, width: info.width });
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      if (SSH_SIGNALS.has(info.name)) guard(() => relay.up?.signal(info.name));
      accept?.();
    });
    // Agent forwarding only when the user's certificate permits it (a role's
    // permit_agent_forwarding); the node's channel is relayed to the client (#agentFor).
    session.on('auth-agent', (accept, reject) => {
      if (started || !('permit-agent-forwarding' in holder.extensions)) return reject?.();
      agent = true;
      accept?.();
    });
    session.on('x11', (_accept, reject) => reject?.());
    const start = (
      kind: 'shell' | 'exec' | 'subsystem',
      arg: string | undefined,
      accept: () => ServerChannel,
      reject: () => void,
    ) => {
      if (started || c.ending) return reject();
      started = true;
      // Accepted at once: ssh2 refuses to accept a request once the client sent EOF, which
      // OpenSSH does right after `exec` when its stdin is empty. If the node then refuses, the
      // user reads why and the session exits 255.
      const down = accept();
      if (!down) return;
      void this.#start(c, relay, down, { kind, arg, pty, env, agent });
    };
    session.on('shell', (accept, reject) => start('shell', undefined, accept, reject));
    session.on('exec', (accept, reject, info) => start('exec', info.command, accept, reject));
    session.on('subsystem', (accept, reject, info) => start('subsystem', info.name, accept, reject));
  }

  async #start(
    c: Conn,
    relay: Relay,
    down: ServerChannel,
    req: {
      kind: 'shell' | 'exec' | 'subsystem';
      arg: string | undefined;
      pty?: PseudoTtyInfo | undefined;
      env: Record<string, string>;
      agent: boolean;
    },
  ): Promise<void> {
    relay.down = down;
    relay.pty = req.pty !== undefined;
    down.on('error', () => relay.up?.close());
    const refuse = (message: string) => {
      try {
        down.stderr.write(`ERROR: ${message}\r\n`);
        down.exit(255);
        down.end();
      } catch {
        // The client went away first.
      }
    };
    let client: ssh2.Client;
    try {
      client = await c.upstream!;
    } catch (e) {
      // The user reads why (the node refused the proxy, or could not be reached).
      return refuse((e as Error).message);
    }
    if (c.ending) return;
    const ptyOpts = req.pty && {
      rows: req.pty.rows,
      cols: req.pty.cols,
      height: req.pty.height,
      width: req.pty.width,
      term: req.pty.term,
      modes: req.pty.modes,
    };
    const opened = await new Promise<ClientChannel | Error>((resolve) => {
      const cb = (err: Error | undefined, ch: ClientChannel) => resolve(err ?? ch);
      try {
        // ssh2 takes agentForward per session (its typings lack it).
        const agentForward = { agentForward: req.agent } as object;
        if (req.kind === 'shell') client.shell(ptyOpts ?? false, { env: req.env, ...agentForward }, cb);
        else if (req.kind === 'exec')
          client.exec(req.arg ?? '', { env: req.env, ...agentForward, ...(ptyOpts && { pty: ptyOpts }) }, cb);
        else client.subsys(req.arg ?? '', cb);
      } catch (e) {
        // The connection to the node closed meanwhile (ssh2 throws "Not connected").
        resolve(e as Error);
      }
    });
    if (opened instanceof Error)
      return refuse(`node ${JSON.stringify(c.s.node.hostname)} refused the ${req.kind}: ${opened.message}`);
    const up = opened;
    if (c.ending) {
      up.close();
      return;
    }
    relay.up = up;
    const id = randomUUID();
    const startedAt = this.#o.clock.now();
    const command = req.kind === 'exec' ? req.arg : req.kind === 'subsystem' ? req.arg : undefined;
    void this.#emit(c, {
      type: 'session.start',
      ...this.#fields(c, id),
      session_type: req.kind,
      ...(command !== undefined && { command }),
    });
    if (req.kind === 'exec' && command !== undefined)
      void this.#emit(c, { type: 'session.exec', ...this.#fields(c, id), command });
    let exit: { code?: number; signal?: string } = {};
    up.on('exit', (code: number | null, signal?: string) => {
      exit = code !== null && code !== undefined ? { code } : signal ? { signal } : {};
    });
    up.on('error', () => down.destroy());
    down.pipe(up);
    up.pipe(down, { end: false });
    up.stderr.pipe(down.stderr, { end: false });
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      void this.#emit(c, {
        type: 'session.end',
        ...this.#fields(c, id),
        session_type: req.kind,
        ...(command !== undefined && { command }),
        ...(exit.code !== undefined && { exit_code: exit.code }),
        ...(exit.signal !== undefined && { exit_signal: exit.signal }),
        duration_ms: Math.max(0, this.#o.clock.now() - startedAt),
        ...(c.ending !== undefined && { terminated_by: c.ending }),
      });
    };
    up.once('close', () => {
      try {
        if (!c.ending) {
          if (exit.signal !== undefined && SSH_SIGNALS.has(exit.signal)) down.exit(exit.signal, false, '');
          else down.exit(exit.code ?? 255);
        }
        down.end();
      } catch {
        // The client went away first.
      }
      finish();
    });
    // A lock, or a client that went away, may close the client's side first.
    down.once('close', finish);
  }

  #forward(c: Conn, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo) {
    if (!c.holder || c.ending || !c.upstream) return reject();
    c.upstream.then(
      (client) =>
        guard(reject, () =>
          client.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, up) => {
            if (err || c.ending) {
              up?.close();
              return reject();
            }
            const down = accept();
            const pair = {
              destroy: () => {
                up.close();
                down.destroy();
              },
            };
            c.forwards.add(pair);
            // Audited as the Warden node does: a direct-tcpip session with its address.
            const id = randomUUID();
            const startedAt = this.#o.clock.now();
            const forward = {
              session_type: 'direct-tcpip',
              forward_addr: formatHostPort({ host: info.destIP, port: info.destPort }),
            };
            void this.#emit(c, { type: 'session.start', ...this.#fields(c, id), ...forward });
            down.on('error', () => up.close());
            up.on('error', () => down.destroy());
            down.pipe(up).pipe(down);
            up.once('close', () => {
              c.forwards.delete(pair);
              down.destroy();
              void this.#emit(c, {
                type: 'session.end',
                ...this.#fields(c, id),
                ...forward,
                duration_ms: Math.max(0, this.#o.clock.now() - startedAt),
                ...(c.ending !== undefined && { terminated_by: c.ending }),
              });
            });
          }),
        ),
      () => reject(),
    );
  }

  // ---- ending --------------------------------------------------------------------------

  /** Each session is told why, then the connection (and the one to the node) closes. */
  #terminate(c: Conn, message: string): void {
    if (c.ending) return;
    c.ending = message;
    // The session monitor logs each session it ends; this is the connection's detail.
    this.#o.logger.debug(
      { user: c.s.identity.user, login: c.s.login, reason: message },
      'ending agentless ssh session',
    );
    // Each session's message, EOF and close leave in one TLS record and write.
    corked(c.conn, () => {
      for (const r of c.sessions) r.end(message);
    });
    for (const f of c.forwards) f.destroy();
    afterGrace(TERMINATE_GRACE_MS, () => {
      try {
        c.conn.end();
      } catch {
        // Already closed.
      }
      c.upstream?.then((client) => client.end()).catch(() => undefined);
      // A client that never answers the disconnect is cut off.
      setTimeout(() => this.#cut(c.s), 2000).unref();
    });
  }

  #cut(s: AgentlessSession): void {
    s.stream.destroy();
    s.upstream.destroy();
  }

  // ---- audit ---------------------------------------------------------------------------

  #fields(c: Conn, id: string) {
    const { identity, node, login, clientAddr } = c.s;
    const d = identity.device;
    return {
      user: identity.user,
      roles: [...identity.roles],
      ...(clientAddr && { addr: clientAddr }),
      ...(d?.deviceId && {
        device: { id: d.deviceId, asset_tag: d.assetTag, credential_id: d.credentialId },
      }),
      protocol: 'ssh' as const,
      session_id: id,
      resource: {
        kind: 'node',
        name: node.id,
        hostname: node.hostname,
        ...(node.labels && Object.keys(node.labels).length > 0 && { labels: { ...node.labels } }),
      },
      node: node.hostname,
      login,
    };
  }

  async #emit(c: Conn, event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event, { node: c.s.node.id });
  }
}

/**
 * Runs `fn`; ssh2 throws from calls on a connection that closed meanwhile, and a throw from an
 * event handler would end the proxy. `onError` runs instead of the throw.
 */
function guard(fn: () => void): void;
function guard(onError: () => void, fn: () => void): void;
function guard(a: () => void, b?: () => void): void {
  const [onError, fn] = b ? [a, b] : [() => undefined, a];
  try {
    fn();
  } catch {
    onError();
  }
}

/** What the user reads when the node refused the proxy. */
function upstreamError(msg: string, node: string, login: string): string {
  if (/All configured authentication methods failed/.test(msg)) {
    return (
      `node ${node} refused the proxy's session certificate for login ${JSON.stringify(login)}: ` +
      'its sshd must trust the openssh CA (TrustedUserCAKeys: `wctl auth export --type=openssh`) and have that login'
    );
  }
  if (/no matching host key format/.test(msg))
    return `node ${node} presents no host certificate (\`wctl auth sign --host=NAME\` makes one)`;
  if (/Timed out while waiting for handshake/.test(msg))
    return `node ${node} did not complete the SSH handshake in time`;
  return `connection to node ${node} failed: ${msg}`;
}
