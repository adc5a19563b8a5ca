/**
 * Refusing channels with a reason. A channel refused by policy must reach the client as
 * `SSH_MSG_CHANNEL_OPEN_FAILURE` with reason code 1 (administratively prohibited) and our
 * text, so OpenSSH prints `channel 0: open failed: administratively prohibited: <reason>`
 * and wsh `ssh: rejected: administratively prohibited (<reason>)`. ssh2's `reject()` sends
 * CONNECT_FAILED with an empty description, so, per connection, we wrap the protocol's
 * CHANNEL_OPEN handler (`Client._protocol._handlers.CHANNEL_OPEN`, an object ssh2 creates
 * for each connection): when `reasonFor(info)` returns a reason, we answer with it; otherwise
 * ssh2 handles the open as usual. Internals are checked at install (fail closed: the caller
 * drops the connection). Who may import: this folder. Tested end to end in `test/ssh-node/`.
 */
import type { Connection } from 'ssh2';

/** SSH_OPEN_ADMINISTRATIVELY_PROHIBITED (RFC 4254 §5.1). */
export const ADMINISTRATIVELY_PROHIBITED = 1;

/** What the client asked for: `session`, `direct-tcpip`… */
export interface ChannelOpenInfo {
  type: string;
  sender: number;
}

interface ProtocolLike {
  _handlers: { CHANNEL_OPEN?: (proto: unknown, info: ChannelOpenInfo) => void };
  channelOpenFail(remote: number, reason: number, desc: string): void;
}

/**
 * @example
 *   refuseChannels(conn, () => state.denied); // every channel refused with the access checker's reason
 */
export function refuseChannels(
  conn: Connection,
  reasonFor: (info: ChannelOpenInfo) => string | undefined,
): void {
  const proto = (conn as unknown as { _protocol?: Partial<ProtocolLike> })._protocol;
  const original = proto?._handlers?.CHANNEL_OPEN;
  if (!proto || typeof original !== 'function' || typeof proto.channelOpenFail !== 'function')
    throw new Error(
      'ssh2 internals changed (Client._protocol._handlers.CHANNEL_OPEN): cannot refuse channels with a reason',
    );
  const handlers = proto._handlers as ProtocolLike['_handlers'];
  const fail = proto.channelOpenFail.bind(proto);
  handlers.CHANNEL_OPEN = (p, info) => {
    let reason: string | undefined;
    try {
      reason = reasonFor(info);
    } catch {
      reason = 'access denied: internal error';
    }
    if (reason !== undefined) fail(info.sender, ADMINISTRATIVELY_PROHIBITED, reason);
    else original(p, info);
  };
}
