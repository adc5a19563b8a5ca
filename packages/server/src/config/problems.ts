/**
 * Turns YAML syntax errors and schema issues into `ConfigProblem`s that name the field path
 * and the line it is on, and those into the one `WARDEN_ERR_BAD_CONFIG` a user reads:
 *
 *   warden.yaml: auth_service.authentication.second_factor: expected one of on, otp, off (line 6)
 *
 * Internal to `config/`; exercised through `config.test.ts`.
 */
import { WardenError } from '@warden/api';
import { type Document, isMap, isScalar, isSeq, type LineCounter } from 'yaml';
import type * as z from 'zod';

/** One thing wrong with a config file. `path` is empty for problems with the whole file. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly line: number | undefined;
}

type Path = readonly PropertyKey[];

/** `auth_service.authentication.device_trust.ekcert_allowed_cas[0]` */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/** Where in the source a path is: a located YAML document and its line counter. */
export interface SourceMap {
  readonly doc: Document;
  readonly lineCounter: LineCounter;
}

function start(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null)?.range;
  return range?.[0];
}

/**
 * The 1-based line of `path` in the document: of the key itself when `atKey` (unknown
 * fields), of the value otherwise; of the nearest existing ancestor when the path is missing.
 */
export function lineOf(map: SourceMap, path: Path, atKey = false): number | undefined {
  let node: unknown = map.doc.contents;
  let offset = start(node);
  for (const [i, seg] of path.entries()) {
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const keyStart = start(pair.key);
      if (last && atKey) {
        offset = keyStart ?? offset;
        break;
      }
      offset = start(pair.value) ?? keyStart ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      offset = start(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : map.lineCounter.linePos(offset).line;
}

function valueAt(root: unknown, path: Path): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describe(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

const NOUNS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  boolean: 'true or false',
  number: 'a number',
};

function oneOf(values: readonly unknown[]): string {
  const shown = values.map((v) => String(v));
  return shown.length === 1 ? `expected ${shown[0]}` : `expected one of ${shown.join(', ')}`;
}

/** Maps zod issues on the parsed YAML (`raw`) to located problems, in line order. */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  raw: unknown,
  map: SourceMap,
): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const add = (path: Path, message: string, atKey = false) =>
    out.push({ path: formatPath(path), message, line: lineOf(map, path, atKey) });

  for (const issue of issues) {
    const path = issue.path;
    const missing = valueAt(raw, path) === undefined;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) add([...path, key], 'unknown field', true);
        break;
      case 'invalid_value':
        add(path, missing ? `is required; ${oneOf(issue.values)}` : oneOf(issue.values));
        break;
      case 'invalid_union': {
        const options = (issue as { options?: readonly unknown[] }).options;
        if (options) add(path, missing ? `is required; ${oneOf(options)}` : oneOf(options));
        else add(path, issue.message);
        break;
      }
      case 'invalid_type':
        add(
          path,
          missing
            ? 'is required'
            : `expected ${NOUNS[issue.expected] ?? issue.expected}, got ${describe(valueAt(raw, path))}`,
        );
        break;
      default:
        add(path, issue.message);
    }
  }
  return sortProblems(out);
}

/** Problems sorted by line (unlocated ones last), keeping the original order among equals. */
export function sortProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort(
    (a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER),
  );
}

/** One line for a problem: `source: path: message (line N)`. */
export function formatProblem(source: string, p: ConfigProblem): string {
  const where = p.line === undefined ? '' : ` (line ${p.line})`;
  return p.path === '' ? `${source}: ${p.message}${where}` : `${source}: ${p.path}: ${p.message}${where}`;
}

/**
 * The single error for a bad config: the first problem in the message (with a count of the
 * rest), all of them in `details.problems`.
 */
export function badConfig(source: string, problems: readonly ConfigProblem[]): WardenError {
  const [first, ...rest] = problems;
  if (first === undefined)
    return new WardenError('WARDEN_ERR_BAD_CONFIG', `${source}: invalid configuration`);
  const more = rest.length === 0 ? '' : ` (and ${rest.length} more problem${rest.length === 1 ? '' : 's'})`;
  return new WardenError('WARDEN_ERR_BAD_CONFIG', `${formatProblem(source, first)}${more}`, {
    source,
    problems: problems.map((p) => ({ ...p })),
  });
}
