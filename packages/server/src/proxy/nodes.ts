/**
 * `wsh ls`: the nodes a caller may reach. A node is listed when at least one of the caller's
 * logins is allowed there, or would be after device authentication (so `wsh ls` shows where
 * `wsh device authn` helps). Internal to `proxy/`; the public surface is `proxy/index.ts`.
 */
import type { NodeResource } from '@warden/api';
import type { Identity } from '../access';

export interface NodeDecider {
  decide(
    identity: Identity,
    node: NodeResource,
    login: string,
  ): { allowed: boolean; step?: string } | Promise<{ allowed: boolean; step?: string }>;
}

export async function reachableNodes(
  nodes: { list(): Promise<NodeResource[]> },
  decider: NodeDecider,
  identity: Identity,
): Promise<NodeResource[]> {
  const out: NodeResource[] = [];
  const logins = identity.logins.length ? identity.logins : ['-'];
  for (const node of await nodes.list()) {
    for (const login of logins) {
      const d = await decider.decide(identity, node, login);
      if (d.allowed || d.step === 'device_trust') {
        out.push(node);
        break;
      }
    }
  }
  return out;
}
