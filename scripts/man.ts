// Writes the man pages of wsh, wctl and wbot (generated from their command tables) into dist/man.
// Run by scripts/build.mjs; usage: node --import tsx scripts/man.ts [OUT_DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { manPages } from '../packages/cli/src/man';
import { wbot, wctl, wsh } from '../packages/cli/src/programs';

const out = process.argv[2] ?? 'dist/man';
mkdirSync(out, { recursive: true });
for (const program of [wsh, wctl, wbot]) {
  for (const [name, text] of manPages(program)) writeFileSync(join(out, name), text);
}
