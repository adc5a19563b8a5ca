/**
 * `wctl get|rm`: resources as the server returns them (validated there), as YAML, JSON or a
 * table. No zod here: `wctl get` is the command whose start-up bench/cli.ts measures;
 * `create` and `edit`, which validate, are in apply.ts.
 */
import {
  KIND_NAMES,
  parseResourceRef,
  printResource,
  RESOURCE_KINDS,
  type ResourceKind,
  type ResourceRef,
  resolveKind,
  singletonName,
  WardenError,
} from '@warden/api';
import { type CommandContext, suggest } from '../command';
import { formatData, formatLabels, parseFormat, table } from '../format';
import { devicesTable } from './devices';
import { openSession } from './identity';

/** parseResourceRef, saying "did you mean" for a misspelt kind (`wctl get rols`). */
export function parseRef(text: string): ResourceRef {
  const word = text.split('/')[0]!.toLowerCase();
  const best = resolveKind(word)
    ? undefined
    : suggest(
        word,
        RESOURCE_KINDS.flatMap((k) => KIND_NAMES[k].aliases),
      )[0];
  if (best) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `unknown resource kind "${word}"; did you mean "${best}"? (kinds: ${RESOURCE_KINDS.join(', ')})`,
    );
  }
  return parseResourceRef(text);
}

export const KIND_TEXT: Record<string, string> = {
  role: 'role',
  user: 'user',
  lock: 'lock',
  cluster_auth_preference: 'cluster auth preference',
  cert_authority: 'certificate authority',
  device: 'device',
  app: 'app',
};

function name(r: Record<string, unknown>): string {
  return String((r.metadata as { name?: unknown } | undefined)?.name ?? '');
}

function spec(r: Record<string, unknown>): Record<string, unknown> {
  return (r.spec as Record<string, unknown> | undefined) ?? {};
}

/** The Labels column: sorted by key, as every listing shows them. */
function labels(r: Record<string, unknown>): string {
  return formatLabels((r.metadata as { labels?: Record<string, string> }).labels ?? {});
}

/** One row per resource for `--format=text` listings. */
export function textTable(kind: ResourceKind, items: Record<string, unknown>[]): string {
  switch (kind) {
    case 'user':
      return table(
        ['User', 'Roles'],
        items.map((r) => [name(r), ((spec(r).roles as string[]) ?? []).join(',')]),
      );
    case 'lock':
      return table(
        ['ID', 'Target', 'Message', 'Expires'],
        items.map((r) => {
          const s = spec(r);
          const target = Object.entries((s.target as Record<string, string>) ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',');
          return [name(r), target, String(s.message ?? ''), String(s.expires ?? 'never')];
        }),
      );
    case 'device':
      return devicesTable(items);
    case 'app':
      return table(
        ['Name', 'URI', 'Public address', 'Labels'],
        items.map((r) => [name(r), String(spec(r).uri ?? ''), String(spec(r).public_addr ?? ''), labels(r)]),
      );
    case 'node':
      // People know nodes by host name and address; the ID (metadata.name) is what
      // `wctl rm node/ID` takes, so it stays, last.
      return table(
        ['Hostname', 'Address', 'Sort', 'Labels', 'ID'],
        [...items]
          .sort((a, b) => String(spec(a).hostname).localeCompare(String(spec(b).hostname)))
          .map((r) => [
            String(spec(r).hostname ?? ''),
            String(spec(r).addr ?? ''),
            spec(r).sub_kind === 'openssh' ? 'agentless' : 'warden',
            labels(r),
            name(r),
          ]),
      );
    case 'db':
      return table(
        ['Name', 'Protocol', 'URI', 'Labels'],
        items.map((r) => [name(r), String(spec(r).protocol ?? ''), String(spec(r).uri ?? ''), labels(r)]),
      );
    case 'cert_authority':
      return table(
        ['Type', 'Cluster', 'SSH public keys'],
        items.map((r) => [
          String(spec(r).type ?? name(r)),
          String(spec(r).cluster_name ?? ''),
          ((spec(r).ssh_public_keys as string[]) ?? []).map((k) => `${k.slice(0, 40)}…`).join(' '),
        ]),
      );
    default:
      return table(
        ['Name', 'Description'],
        items.map((r) => [name(r), String((r.metadata as { description?: string }).description ?? '')]),
      );
  }
}

export async function runGet(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const ref = parseRef(ctx.positionals[0]!);
  const { api } = openSession(ctx);
  const wanted = ref.name ?? singletonName(ref.kind);
  const items = wanted
    ? [(await api.getResource(ref.kind, wanted)).resource]
    : (await api.listResources(ref.kind)).items;
  if (format === 'json') {
    ctx.stdout.write(formatData(wanted ? items[0] : items, 'json'));
  } else if (format === 'yaml' || wanted || ref.kind === 'role' || ref.kind === 'cluster_auth_preference') {
    ctx.stdout.write(items.map((r) => printResource(r, 'yaml')).join('---\n'));
  } else if (items.length === 0) {
    ctx.stdout.write(`No ${ctx.positionals[0]} found\n`);
  } else {
    ctx.stdout.write(textTable(ref.kind, items));
  }
  return 0;
}

export async function runRm(ctx: CommandContext): Promise<number> {
  const ref = parseRef(ctx.positionals[0]!);
  if (!ref.name)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'name the resource to delete: wctl rm KIND/NAME');
  const { api } = openSession(ctx);
  await api.deleteResource(ref.kind, ref.name);
  ctx.stdout.write(`${KIND_TEXT[ref.kind] ?? ref.kind} "${ref.name}" has been deleted\n`);
  return 0;
}
