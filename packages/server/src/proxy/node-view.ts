/**
 * The proxy's view of the SSH nodes, for finding the node of each tunnel without reading the
 * backend: a watch-fed `ResourceCache` of `/nodes/` with an index by hostname. Before, every
 * SSH tunnel listed and schema-checked every node (`findNode`); a heartbeat now costs one
 * decode when it arrives, and a lookup two map reads.
 *
 * Freshness: a node found in the view is used as the view has it (a heartbeat or an edit
 * arrives within the watch's delay, as for roles and locks). A name the view does not know,
 * or any lookup while the view is not healthy (watch broken, item that does not decode), is
 * answered from the backend (`findNode`), so a node that registered a moment ago is found and
 * an outage of the watch costs speed, not answers. Expired nodes (heartbeat TTL passed, delete
 * event not yet delivered) are hidden at once, as the backend's reads hide them. Internal to
 * `proxy/`; tested by `node-view.test.ts`.
 *
 * @example
 *   const view = new NodeView({ cache: services.nodeCache({ logger }), clock, nodes: services.nodes });
 *   await view.start();
 *   const node = await view.find('web-1'); // by ID or hostname
 */
import { type NodeResource, WardenError } from '@warden/api';
import type { Clock } from '../clock';
import type { CachedNode as Entry, ResourceCache, Services } from '../services';

export interface NodeViewOptions {
  /** The watch-fed node cache (`services.nodeCache()`, not started yet); the view owns it. */
  cache: ResourceCache<Entry>;
  clock: Clock;
  /** The node store, asked for names the view does not know. */
  nodes: Services['nodes'];
}

export class NodeView {
  readonly #cache: ResourceCache<Entry>;
  readonly #clock: Clock;
  readonly #nodes: Services['nodes'];
  /** Node names (IDs) by hostname. */
  readonly #byHost = new Map<string, Set<string>>();
  /** The hostname each cached key is indexed under. */
  readonly #hostOf = new Map<string, string>();
  readonly #unsubscribe: () => void;

  constructor(o: NodeViewOptions) {
    this.#clock = o.clock;
    this.#nodes = o.nodes;
    this.#cache = o.cache;
    this.#unsubscribe = this.#cache.onChange((change) => {
      if (change.type === 'reset') {
        this.#byHost.clear();
        this.#hostOf.clear();
        for (const { node } of this.#cache.values()) this.#index(o.nodes.prefix + node.metadata.name, node);
      } else {
        this.#unindex(change.key);
        if (change.type === 'put') this.#index(change.key, change.value.node);
      }
    });
  }

  /** Lists and starts watching; resolves after the first list. */
  start(): Promise<void> {
    return this.#cache.start();
  }

  close(): void {
    this.#unsubscribe();
    this.#cache.close();
  }

  /**
   * The node named `wanted` (its ID) or, failing that, the one node with that hostname; several
   * nodes with one hostname → BAD_PARAMETER naming their IDs; none → NOT_FOUND (after asking
   * the backend).
   */
  async find(wanted: string): Promise<NodeResource> {
    if (this.#cache.healthy) {
      const now = this.#clock.now();
      const live = (e: Entry | undefined) =>
        e !== undefined && (e.expires === undefined || e.expires > now) ? e.node : undefined;
      const byName = live(this.#cache.get(wanted));
      if (byName?.metadata.name === wanted) return byName;
      const names = this.#byHost.get(wanted);
      if (names) {
        const byHost = [...names].sort().flatMap((n) => live(this.#cache.get(n)) ?? []);
        if (byHost.length === 1) return byHost[0]!;
        if (byHost.length > 1) throw severalNamed(wanted, byHost);
      }
    }
    return findNode(this.#nodes, wanted);
  }

  #index(key: string, node: NodeResource): void {
    const host = node.spec.hostname;
    this.#hostOf.set(key, host);
    let names = this.#byHost.get(host);
    if (!names) {
      names = new Set();
      this.#byHost.set(host, names);
    }
    names.add(node.metadata.name);
  }

  #unindex(key: string): void {
    const host = this.#hostOf.get(key);
    if (host === undefined) return;
    this.#hostOf.delete(key);
    const names = this.#byHost.get(host);
    names?.delete(key.slice(this.#nodes.prefix.length));
    if (names?.size === 0) this.#byHost.delete(host);
  }
}

/** Finds a node by name (ID) or hostname from the backend (one listing); see `NodeView.find`. */
export async function findNode(
  nodes: Pick<Services['nodes'], 'list'>,
  wanted: string,
): Promise<NodeResource> {
  const all = await nodes.list();
  const byName = all.find((n) => n.metadata.name === wanted);
  if (byName) return byName;
  const byHost = all.filter((n) => n.spec.hostname === wanted);
  if (byHost.length === 1) return byHost[0]!;
  if (byHost.length > 1) throw severalNamed(wanted, byHost);
  throw new WardenError(
    'WARDEN_ERR_NOT_FOUND',
    `node "${wanted}" not found; \`wsh ls\` lists the nodes you can reach`,
  );
}

function severalNamed(wanted: string, nodes: NodeResource[]): WardenError {
  return new WardenError(
    'WARDEN_ERR_BAD_PARAMETER',
    `several nodes are named "${wanted}": use the node ID (${nodes.map((n) => n.metadata.name).join(', ')})`,
  );
}
