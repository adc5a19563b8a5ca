/** `wctl create|edit`: resources from YAML or JSON, validated before they leave. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatResource,
  isWardenError,
  parseResources,
  type Resource,
  singletonName,
  WardenError,
} from '@warden/api';
import type { CommandContext } from '../command';
import { openSession } from './identity';
import { KIND_TEXT, parseRef } from './resources';

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

export async function runEdit(ctx: CommandContext): Promise<number> {
  const ref = parseRef(ctx.positionals[0]!);
  const wanted = ref.name ?? singletonName(ref.kind);
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
