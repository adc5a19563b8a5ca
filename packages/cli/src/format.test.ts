import assert from 'node:assert/strict';
import { test } from 'node:test';
import { table, terminalWidth } from './format';

test('a table fits the width: the widest column is cut with "…", headers and narrow columns kept', () => {
  const long = 'x'.repeat(300);
  const text = table(['Time', 'Type', 'Details'], [['2026-12-06T05:00:00Z', 'user.login', long]], 60);
  const lines = text.trimEnd().split('\n');
  for (const l of lines) assert.ok(l.length <= 60, `${l.length}: ${l}`);
  assert.match(lines[2]!, /^2026-12-06T05:00:00Z user\.login x+…$/);
  assert.equal(table(['A'], [['b']], undefined), 'A\n-\nb\n');
  // Without a limit nothing is cut.
  assert.ok(table(['D'], [[long]], undefined).includes(long));
});

test("the width is the terminal's, else COLUMNS, else none (a pipe gets whole cells)", () => {
  assert.equal(terminalWidth({ isTTY: true, columns: 120 }, {}), 120);
  assert.equal(terminalWidth({ isTTY: false }, { COLUMNS: '90' }), 90);
  assert.equal(terminalWidth({ isTTY: false }, {}), undefined);
});
