/**
 * `wsh config --is-node HOST`: what the `Match exec` form of `wsh config` runs for each bare
 * host name OpenSSH connects to. Exit 0 when HOST (or HOST without `.<cluster>`) is a node of
 * the logged-in cluster, else 1; prints nothing. The node list is cached in the profile for a
 * minute (`ssh-nodes.json`, also written by `wsh config`), so most checks make no request; when
 * the proxy cannot be asked, the last list answers (none: not a node).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientForProfile, ProfileStore, wardenHome } from '@warden/client';
import type { CommandContext } from '../command';

const CACHE_FILE = 'ssh-nodes.json';
export const NODE_CACHE_MAX_AGE_MS = 60_000;

interface NodeCache {
  fetched: number;
  nodes: string[];
}

/** Writes the node names for later checks (atomic: temp file + rename). */
export function writeNodeCache(profileDir: string, nodes: readonly string[], now = Date.now()): void {
  const path = join(profileDir, CACHE_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ fetched: now, nodes: [...nodes] } satisfies NodeCache), {
    mode: 0o600,
  });
  renameSync(tmp, path);
}

function readNodeCache(profileDir: string): NodeCache | undefined {
  try {
    const c = JSON.parse(readFileSync(join(profileDir, CACHE_FILE), 'utf8')) as Partial<NodeCache>;
    if (typeof c.fetched !== 'number' || !Array.isArray(c.nodes)) return undefined;
    return { fetched: c.fetched, nodes: c.nodes.filter((n): n is string => typeof n === 'string') };
  } catch {
    return undefined;
  }
}

/** The host names in a node listing (entries without one are skipped). */
export function nodeHostnames(items: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const item of items) {
    const spec = (item as { spec?: { hostname?: unknown } } | null)?.spec;
    if (typeof spec?.hostname === 'string') out.push(spec.hostname);
  }
  return out;
}

export async function runIsNode(ctx: CommandContext, now = Date.now()): Promise<number> {
  const host = String(ctx.values['is-node'] ?? '');
  let profile: ReturnType<ProfileStore['require']>;
  try {
    profile = new ProfileStore(wardenHome(ctx.env)).require();
  } catch {
    return 1; // Not logged in: nothing is a node.
  }
  const suffix = `.${profile.cluster}`;
  const name = host.endsWith(suffix) ? host.slice(0, -suffix.length) : host;
  if (!name) return 1;
  let cache = readNodeCache(profile.dir);
  if (!cache || now - cache.fetched > NODE_CACHE_MAX_AGE_MS || now < cache.fetched) {
    try {
      const { items } = await clientForProfile(profile).listNodes();
      cache = { fetched: now, nodes: nodeHostnames(items) };
      writeNodeCache(profile.dir, cache.nodes, now);
    } catch {
      // Expired certificate, proxy down: the last list (if any) answers.
    }
  }
  return cache?.nodes.includes(name) ? 0 : 1;
}
