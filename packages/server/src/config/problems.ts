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

/** Edit distance with transpositions (optimal string alignment), for "did you mean". */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The closest of `candidates` to `word`, if it looks like a typo of it (one slip, or less
 * than a quarter of the word wrong) or a prefix of it (`listen` for `listen_addr`).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    if (c === word) continue;
    const lc = c.toLowerCase();
    const d = w.length >= 4 && lc.startsWith(w) ? 1 : distance(w, lc);
    const typo = (d === 1 && w.length >= 3) || d * 4 < w.length;
    if (typo && (!best || d < best.d)) best = { c, d };
  }
  return best?.c;
}

interface SchemaDef {
  type: string;
  innerType?: unknown;
  in?: unknown;
  out?: unknown;
  shape?: Record<string, unknown>;
  element?: unknown;
  options?: unknown[];
}

function defOf(schema: unknown): SchemaDef | undefined {
  return (schema as { _zod?: { def?: SchemaDef } })?._zod?.def;
}

/** The field names a mapping at `path` may have, read from the schema (for "did you mean"). */
export function knownKeysAt(schema: unknown, path: Path): string[] {
  const keys = new Set<string>();
  const visit = (node: unknown, rest: Path, depth: number): void => {
    const def = defOf(node);
    if (!def || depth > 40) return;
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'readonly':
        visit(def.innerType, rest, depth + 1);
        return;
      case 'pipe':
        visit(def.in, rest, depth + 1);
        visit(def.out, rest, depth + 1);
        return;
      case 'union':
        for (const o of def.options ?? []) visit(o, rest, depth + 1);
        return;
      case 'array':
        if (typeof rest[0] === 'number') visit(def.element, rest.slice(1), depth + 1);
        return;
      case 'object':
        if (rest.length === 0) for (const k of Object.keys(def.shape ?? {})) keys.add(k);
        else visit(def.shape?.[String(rest[0])], rest.slice(1), depth + 1);
        return;
    }
  };
  visit(schema, path, 0);
  return [...keys];
}

/**
 * Maps zod issues on the parsed YAML (`raw`) to located problems, in line order; an unknown
 * field or value that looks like a typo of a known one says "did you mean".
 */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  raw: unknown,
  map: SourceMap,
  schema?: unknown,
): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const add = (path: Path, message: string, atKey = false) =>
    out.push({ path: formatPath(path), message, line: lineOf(map, path, atKey) });

  for (const issue of issues) {
    const path = issue.path;
    const missing = valueAt(raw, path) === undefined;
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = schema === undefined ? [] : knownKeysAt(schema, path);
        for (const key of issue.keys) {
          const guess = closest(key, known);
          add([...path, key], guess ? `unknown field; did you mean ${guess}?` : 'unknown field', true);
        }
        break;
      }
      case 'invalid_value': {
        const value = valueAt(raw, path);
        const guess =
          typeof value === 'string' && issue.values.length > 1
            ? closest(
                value,
                issue.values.map((v) => String(v)),
              )
            : undefined;
        add(
          path,
          missing
            ? `is required; ${oneOf(issue.values)}`
            : `${oneOf(issue.values)}${guess ? `; did you mean ${guess}?` : ''}`,
        );
        break;
      }
      case 'invalid_union': {
        const options = (issue as { options?: readonly unknown[] }).options;
        const value = valueAt(raw, path);
        const guess =
          options && typeof value === 'string' && options.length > 1
            ? closest(
                value,
                options.map((v) => String(v)),
              )
            : undefined;
        if (options)
          add(
            path,
            missing
              ? `is required; ${oneOf(options)}`
              : `${oneOf(options)}${guess ? `; did you mean ${guess}?` : ''}`,
          );
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

/** Every problem of a config error, one line each (`source: path: message (line N)`). */
export function problemLines(e: { message: string; details?: unknown }): string[] {
  const d = e.details as { source?: string; problems?: ConfigProblem[] } | undefined;
  if (!d?.source || !d.problems?.length) return [e.message];
  return d.problems.map((p) => formatProblem(d.source!, p));
}

/**
 * The single error for a bad config: the first problem in the message (with a count of the
 * rest), all of them in `details.problems` (`problemLines` prints them all).
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
