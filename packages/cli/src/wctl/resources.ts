/** `wctl create|get|edit|rm`: resources as YAML or JSON, validated before they leave. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatResource,
  isWardenError,
  parseResourceRef,
  parseResources,
  type Resource,
  type ResourceKind,
  resourceKinds,
  WardenError,
} from '@warden/api';
import type { CommandContext } from '../command';
import { formatData, parseFormat, table } from '../format';
import { devicesTable } from './devices';
import { openSession } from './identity';

async function readInput(ctx: CommandContext, file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of ctx.stdin) chunks.push(Buffer.from(c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

const KIND_TEXT: Record<string, string> = {
  role: 'role',
  user: 'user',
  lock: 'lock',
  cluster_auth_preference: 'cluster auth preference',
  cert_authority: 'certificate authority',
  device: 'device',
  app: 'app',
};

function describe(res: Resource, outcome: 'created' | 'updated'): string {
  if (res.kind === 'cluster_auth_preference') return 'cluster auth preference has been updated';
  return `${KIND_TEXT[res.kind] ?? res.kind} "${res.metadata.name}" has been ${outcome}`;
}

export async function runCreate(ctx: CommandContext): Promise<number> {
  const file = ctx.positionals[0]!;
  const resources = parseResources(await readInput(ctx, file), { source: file === '-' ? 'stdin' : file });
  if (resources.length === 0) throw new WardenError('WARDEN_ERR_BAD_RESOURCE', `${file}: no resources found`);
  const { api } = openSession(ctx);
  for (const res of resources) {
    const out = await api.putResource({
      resource: res as unknown as Record<string, unknown>,
      force: Boolean(ctx.values.force),
    });
    ctx.stdout.write(`${describe(res, out.outcome)}\n`);
    for (const w of out.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
  }
  return 0;
}

function name(r: Record<string, unknown>): string {
  return String((r.metadata as { name?: unknown } | undefined)?.name ?? '');
}

function spec(r: Record<string, unknown>): Record<string, unknown> {
  return (r.spec as Record<string, unknown> | undefined) ?? {};
}

function labels(r: Record<string, unknown>): string {
  return Object.entries((r.metadata as { labels?: Record<string, string> }).labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** One row per resource for `--format=text` listings. */
function textTable(kind: ResourceKind, items: Record<string, unknown>[]): string {
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
  const ref = parseResourceRef(ctx.positionals[0]!);
  const { api } = openSession(ctx);
  const singleton = (resourceKinds[ref.kind] as { singletonName?: string }).singletonName;
  const wanted = ref.name ?? singleton;
  const items = wanted
    ? [(await api.getResource(ref.kind, wanted)).resource]
    : (await api.listResources(ref.kind)).items;
  if (format === 'json') {
    ctx.stdout.write(formatData(wanted ? items[0] : items, 'json'));
  } else if (format === 'yaml' || wanted || ref.kind === 'role' || ref.kind === 'cluster_auth_preference') {
    ctx.stdout.write(items.map((r) => formatResource(r as unknown as Resource, 'yaml')).join('---\n'));
  } else if (items.length === 0) {
    ctx.stdout.write(`No ${ctx.positionals[0]} found\n`);
  } else {
    ctx.stdout.write(textTable(ref.kind, items));
  }
  return 0;
}

export async function runRm(ctx: CommandContext): Promise<number> {
  const ref = parseResourceRef(ctx.positionals[0]!);
  if (!ref.name)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'name the resource to delete: wctl rm KIND/NAME');
  const { api } = openSession(ctx);
  await api.deleteResource(ref.kind, ref.name);
  ctx.stdout.write(`${KIND_TEXT[ref.kind] ?? ref.kind} "${ref.name}" has been deleted\n`);
  return 0;
}

export async function runEdit(ctx: CommandContext): Promise<number> {
  const ref = parseResourceRef(ctx.positionals[0]!);
  const singleton = (resourceKinds[ref.kind] as { singletonName?: string }).singletonName;
  const wanted = ref.name ?? singleton;
  if (!wanted)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'name the resource to edit: wctl edit KIND/NAME');
  const { api } = openSession(ctx);
  const current = (await api.getResource(ref.kind, wanted)).resource as unknown as Resource;
  const revision = current.metadata.revision;
  const original = formatResource(current, 'yaml');
  // Loaded here: `wctl get` (the same module) starts faster without child_process.
  const { spawnSync } = await import('node:child_process');
  const editor = ctx.env.VISUAL || ctx.env.EDITOR || 'vi';
  const dir = mkdtempSync(join(tmpdir(), 'wctl-edit-'));
  const file = join(dir, `${ref.kind}-${wanted}.yaml`);
  try {
    let text = original;
    let problem = '';
    for (;;) {
      writeFileSync(
        file,
        problem
          ? `# ERROR: ${problem.replace(/\n/g, '\n# ')}\n# Fix it, or empty the file to cancel.\n${text}`
          : text,
        {
          mode: 0o600,
        },
      );
      const run = spawnSync(editor, [file], { stdio: 'inherit', shell: true });
      if (run.status !== 0)
        throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `the editor "${editor}" failed; nothing changed`);
      text = readFileSync(file, 'utf8').replace(/^# ERROR:.*\n(# .*\n)*/, '');
      if (text.trim() === '') {
        ctx.stdout.write('Edit cancelled; nothing changed.\n');
        return 1;
      }
      if (text === original) {
        ctx.stdout.write('No changes.\n');
        return 0;
      }
      try {
        const [res, ...more] = parseResources(text, { source: file });
        if (!res || more.length > 0)
          throw new WardenError('WARDEN_ERR_BAD_RESOURCE', 'expected exactly one resource');
        if (res.kind !== current.kind || res.metadata.name !== current.metadata.name) {
          throw new WardenError(
            'WARDEN_ERR_BAD_RESOURCE',
            'the kind and metadata.name cannot be changed by edit',
          );
        }
        const out = await api.putResource({
          resource: res as unknown as Record<string, unknown>,
          force: true,
          expected_revision: revision,
        });
        ctx.stdout.write(`${describe(res, out.outcome)}\n`);
        for (const w of out.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
        return 0;
      } catch (e) {
        if (
          !isWardenError(e) ||
          (e.code !== 'WARDEN_ERR_BAD_RESOURCE' && e.code !== 'WARDEN_ERR_BAD_PARAMETER')
        )
          throw e;
        if (!ctx.stdin.isTTY && !ctx.env.WARDEN_EDIT_RETRY) throw e;
        problem = e.message;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
