/**
 * Local port forwarding (`-L [bind:]port:host:hostport`): a local TCP listener whose
 * connections become direct-tcpip channels from the node to host:hostport. Binds to
 * localhost unless an address is given (as OpenSSH does with GatewayPorts off).
 * Who may import: this folder (index.ts re-exports). Tested by forward.test.ts (parsing) and
 * in test/ssh-client/ (forwarding to an echo server through a real sshd).
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { WardenError } from '@warden/api';
import type { NodeSsh } from './connect';

export interface ForwardSpec {
  bindAddress: string;
  /** 0 picks a free port. */
  bindPort: number;
  host: string;
  hostPort: number;
}

function badSpec(spec: string, why: string): WardenError {
  return new WardenError(
    'WARDEN_ERR_BAD_PARAMETER',
    `invalid -L "${spec}": ${why}; expected [bind_address:]port:host:hostport (IPv6 addresses in brackets)`,
  );
}

/** Splits on ':' outside brackets, so `[::1]:80` stays one field. */
function fields(spec: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let inBracket = false;
  for (const ch of spec) {
    if (ch === '[' && !inBracket && cur === '') inBracket = true;
    else if (ch === ']' && inBracket) inBracket = false;
    else if (ch === ':' && !inBracket) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (inBracket) return undefined;
  out.push(cur);
  return out;
}

function port(spec: string, s: string, what: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(s)) throw badSpec(spec, `${what} "${s}" is not a port number`);
  const n = Number(s);
  if (n > 65535 || (n === 0 && !allowZero)) throw badSpec(spec, `${what} ${n} is out of range`);
  return n;
}

/**
 * Parses an OpenSSH `-L` spec: `port:host:hostport` or `bind:port:host:hostport`.
 *
 * @example
 *   parseForwardSpec('8080:localhost:80')  // { bindAddress: '127.0.0.1', bindPort: 8080, host: 'localhost', hostPort: 80 }
 *   parseForwardSpec('[::1]:8080:[fd00::5]:80')
 */
export function parseForwardSpec(spec: string): ForwardSpec {
  const f = fields(spec);
  if (!f) throw badSpec(spec, 'unbalanced brackets');
  if (f.length !== 3 && f.length !== 4) throw badSpec(spec, `${f.length} fields`);
  const [bind, p, host, hp] = f.length === 4 ? f : ['', ...f];
  if (!host) throw badSpec(spec, 'the host is empty');
  if (/[\s/]/.test(host) || (bind && /[\s/]/.test(bind))) throw badSpec(spec, 'bad host name');
  return {
    bindAddress: !bind || bind === 'localhost' ? '127.0.0.1' : bind === '*' ? '0.0.0.0' : bind,
    bindPort: port(spec, p ?? '', 'port', true),
    host,
    hostPort: port(spec, hp ?? '', 'host port', false),
  };
}

export interface LocalForward {
  spec: ForwardSpec;
  /** Where the listener is bound (the real port when bindPort was 0). */
  address: AddressInfo;
  close(): Promise<void>;
}

/**
 * Listens on the spec's bind address; each connection opens a direct-tcpip channel on `ssh`
 * and the two are piped. A refused channel closes the local connection and is reported
 * through `onError` (as `ssh: rejected: …`).
 */
export async function startLocalForward(
  ssh: NodeSsh,
  spec: ForwardSpec,
  onError: (e: unknown) => void = () => {},
): Promise<LocalForward> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pause();
    ssh
      .forwardOut(socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0, spec.host, spec.hostPort)
      .then(
        (channel) => {
          channel.on('error', () => socket.destroy());
          channel.once('close', () => socket.destroy());
          socket.once('close', () => channel.close());
          socket.pipe(channel).pipe(socket);
          socket.resume();
        },
        (e) => {
          socket.destroy();
          onError(e);
        },
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new WardenError(
          'WARDEN_ERR_BAD_PARAMETER',
          `cannot listen on ${spec.bindAddress}:${spec.bindPort} for -L: ${e.code ?? e.message}`,
        ),
      ),
    );
    server.listen(spec.bindPort, spec.bindAddress, () => resolve());
  });
  return {
    spec,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
