/**
 * docs/errors.md and the error catalogue (packages/api/src/errors.ts) list the same codes, in
 * the same order, with the same status, message and advice — like fastify's
 * test/internals/errors.test.js keeps its docs/Reference/Errors.md honest. A code added to one
 * and not the other fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { errorCatalogue } from '@warden/api';

const DOC = resolve(import.meta.dirname, '..', 'docs', 'errors.md');

interface Entry {
  code: string;
  status: number;
  summary: string;
  action: string;
}

/** The `## CODE` sections of the document with their three fields; a malformed section throws. */
export function parseErrorsDoc(text: string): Entry[] {
  const sections = text.split(/^## /m).slice(1);
  return sections.map((section) => {
    const [heading = '', ...lines] = section.split('\n');
    const field = (name: string) => {
      const line = lines.find((l) => l.startsWith(`- ${name}: `));
      if (line === undefined) throw new Error(`docs/errors.md: ${heading}: no "- ${name}:" line`);
      return line.slice(`- ${name}: `.length).trim();
    };
    return {
      code: heading.trim(),
      status: Number(field('Status')),
      summary: field('Message'),
      action: field('What to do'),
    };
  });
}

function catalogueEntries(): Entry[] {
  return Object.entries(errorCatalogue).map(([code, e]) => ({
    code,
    status: e.status,
    summary: e.summary,
    action: e.action,
  }));
}

test('docs/errors.md lists every catalogue code, and only those, with the same text', () => {
  const documented = parseErrorsDoc(readFileSync(DOC, 'utf8'));
  const catalogue = catalogueEntries();
  assert.deepEqual(
    documented.map((e) => e.code),
    catalogue.map((e) => e.code),
    'the codes (and their order) differ between docs/errors.md and packages/api/src/errors.ts',
  );
  assert.deepEqual(documented, catalogue);
});

test('every catalogue entry says what the user should do', () => {
  for (const e of catalogueEntries()) {
    assert.match(e.code, /^WARDEN_ERR_[A-Z_]+$/);
    assert.ok(e.summary.length > 0 && e.action.length > 10, `${e.code} needs a message and advice`);
    assert.ok(e.status >= 400 && e.status < 600, `${e.code}: HTTP status ${e.status}`);
  }
});

test('the check notices a missing, an extra and a changed entry', () => {
  const text = readFileSync(DOC, 'utf8');
  const catalogue = catalogueEntries();
  const without = text.replace(/^## WARDEN_ERR_LOCKED\n[\s\S]*?(?=^## )/m, '');
  assert.notDeepEqual(parseErrorsDoc(without), catalogue);
  const extra = `${text}\n## WARDEN_ERR_MADE_UP\n\n- Status: 400\n- Message: x\n- What to do: nothing at all\n`;
  assert.notDeepEqual(parseErrorsDoc(extra), catalogue);
  const changed = text.replace('- Message: a lock is in force', '- Message: a lock is on');
  assert.notDeepEqual(parseErrorsDoc(changed), catalogue);
  assert.throws(() => parseErrorsDoc('## WARDEN_ERR_X\n\n- Status: 400\n'), /no "- Message:" line/);
});
