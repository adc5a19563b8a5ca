import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchLabels } from './labels';

const prod = { env: 'production', team: 'web', region: 'eu-west-1' };

test("'*': '*' matches everything, even no labels", () => {
  assert.ok(matchLabels({ '*': '*' }, prod));
  assert.ok(matchLabels({ '*': '*' }, {}));
  assert.ok(matchLabels({ '*': ['*'] }, {}));
});

test('empty or absent selectors match nothing', () => {
  assert.ok(!matchLabels(undefined, prod));
  assert.ok(!matchLabels({}, prod));
  assert.ok(!matchLabels({ env: [] }, prod));
});

test('exact values, lists, and every key must match', () => {
  assert.ok(matchLabels({ env: 'production' }, prod));
  assert.ok(matchLabels({ env: ['staging', 'production'] }, prod));
  assert.ok(matchLabels({ env: 'production', team: 'web' }, prod));
  assert.ok(!matchLabels({ env: 'production', team: 'db' }, prod));
  assert.ok(!matchLabels({ env: 'staging' }, prod));
  assert.ok(!matchLabels({ owner: 'x' }, prod), 'missing label');
  assert.ok(!matchLabels({ env: 'Production' }, prod), 'case-sensitive');
});

test("a value '*' needs the label to exist", () => {
  assert.ok(matchLabels({ env: '*' }, prod));
  assert.ok(!matchLabels({ owner: '*' }, prod));
});

test('regular expressions and globs', () => {
  assert.ok(matchLabels({ region: '^eu-.*$' }, prod));
  assert.ok(!matchLabels({ region: '^us-.*$' }, prod));
  assert.ok(matchLabels({ region: 'eu-*' }, prod));
  assert.ok(!matchLabels({ region: 'eu-*-2' }, prod));
  assert.ok(!matchLabels({ region: 'eu-.*' }, prod), 'without ^…$ a dot is literal');
  assert.ok(!matchLabels({ region: '^eu-(' + '$' }, prod), 'invalid expression matches nothing');
  assert.ok(!matchLabels({ env: '^prod$' }, prod), 'anchored');
});

test("a '*' key with another value matches nothing", () => {
  assert.ok(!matchLabels({ '*': 'production' }, prod));
});

test('labels named like prototype properties are not invented', () => {
  assert.ok(!matchLabels({ constructor: '*' }, {}));
  assert.ok(!matchLabels({ toString: '*' }, prod));
});
