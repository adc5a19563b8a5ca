/**
 * Who calls the auth service: `Caller` (the identity from the client certificate and the
 * client address), as the proxy hands it to every authorized API method, and `Actor` (the
 * user name and address), which is all the implementations under the wrapper need (for
 * audit events and `created_by`).
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import type { Identity } from '../access';

export interface Caller {
  identity: Identity;
  addr: string;
}

/** Who did it, for audit events and `created_by` stamps. */
export interface Actor {
  user: string;
  addr: string;
}

export function actorOf(caller: Caller): Actor {
  return { user: caller.identity.user, addr: caller.addr };
}
