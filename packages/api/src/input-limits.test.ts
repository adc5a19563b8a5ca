import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from './errors';
import {
  jsonNestsDeeperThan,
  parseJsonInput,
  valueNestsDeeperThan,
  yamlFlowNestsDeeperThan,
} from './input-limits';

test('a 200 000-deep array is refused before parsing, without recursion', () => {
  const deep = `{"kind":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
  assert.equal(jsonNestsDeeperThan(deep), true);
  assert.throws(
    () => parseJsonInput(deep, 'request body'),
    (e) =>
      isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') &&
      e.message === 'request body nests deeper than 64 levels',
  );
});

test('brackets inside strings do not count; 64 levels pass, 65 do not', () => {
  assert.equal(jsonNestsDeeperThan(JSON.stringify({ a: '[[[[{{{{\\"[[' })), false);
  const at = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  assert.equal(jsonNestsDeeperThan(at(64)), false);
  assert.equal(jsonNestsDeeperThan(at(65)), true);
  assert.deepEqual(parseJsonInput('{"a":[1]}', 'x'), { a: [1] });
  assert.throws(() => parseJsonInput('{"a":', 'x'), /x is not valid JSON/);
});

test('parsed values: depth counted iteratively, shared references once', () => {
  let v: unknown = 1;
  for (let i = 0; i < 100_000; i++) v = [v];
  assert.equal(valueNestsDeeperThan(v), true);
  const shared = { a: 1 };
  assert.equal(valueNestsDeeperThan({ x: shared, y: shared }), false);
  assert.equal(valueNestsDeeperThan('text'), false);
});

test('YAML flow collections: quoted brackets and comments do not count', () => {
  assert.equal(yamlFlowNestsDeeperThan(`spec: ${'['.repeat(65)}${']'.repeat(65)}`), true);
  assert.equal(
    yamlFlowNestsDeeperThan(`a: "${'['.repeat(100)}"\nb: '${'{'.repeat(100)}'\n# ${'['.repeat(100)}\n`),
    false,
  );
  assert.equal(yamlFlowNestsDeeperThan('a: [[1], {b: [2]}]'), false);
});
