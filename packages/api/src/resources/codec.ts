/**
 * The resource codec: YAML (multi-document) or JSON text in, validated resources out, with
 * errors that name the field path and its line; and resources out as YAML or JSON in a
 * stable field order. Internal to `resources/`; the public surface is `resources/index.ts`.
 */

import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import { WardenError } from '../errors';
import { MAX_INPUT_DEPTH, valueNestsDeeperThan, yamlFlowNestsDeeperThan } from '../input-limits';
import type { Resource } from './kinds';
import { printResource, type ResourceFormat } from './print';
import {
  checkResource,
  issuesMessage,
  type LineLocator,
  type ResourceIssue,
  resourceLabel,
  validateResource,
} from './validate';

export interface ParseResourcesOptions {
  /** Where the text came from (a file name, `stdin`); prefixes error messages. */
  source?: string;
}

/** Most aliases one document may expand (guards against "billion laughs"). */
const MAX_ALIAS_COUNT = 100;

function badResource(
  source: string | undefined,
  message: string,
  details: Record<string, unknown>,
): WardenError {
  return new WardenError('WARDEN_ERR_BAD_RESOURCE', source ? `${source}: ${message}` : message, {
    ...(source ? { source } : {}),
    ...details,
  });
}

/** A locator that maps field paths inside `root` (offset by `prefix`) to lines. */
function locatorFor(root: unknown, lines: LineCounter, prefix: readonly PropertyKey[]): LineLocator {
  const lineOf = (node: unknown): number | undefined => {
    const range = (node as Node | null | undefined)?.range;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  return (path, key) => {
    const full = [...prefix, ...path];
    let node: unknown = root;
    let best = lineOf(root);
    for (let i = 0; i < full.length; i++) {
      const seg = full[i];
      const last = i === full.length - 1;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        );
        if (!pair) return best;
        const keyLine = lineOf(pair.key) ?? best;
        if (last) return key ? keyLine : (lineOf(pair.value) ?? keyLine);
        best = keyLine;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
        node = node.items[seg];
        best = lineOf(node) ?? best;
      } else {
        return best;
      }
    }
    return best;
  };
}

/**
 * Parses YAML (one or more `---`-separated documents) or JSON (an object or an array of
 * objects) and validates each resource with its kind's schema, applying defaults.
 * Throws WARDEN_ERR_BAD_RESOURCE naming the resource, the field path and the line:
 * `role "dev": spec.allow.loginz: unknown field (line 7)`.
 *
 * @example
 *   const [role] = parseResources(await readFile('role.yaml', 'utf8'), { source: 'role.yaml' });
 */
export function parseResources(text: string, opts: ParseResourcesOptions = {}): Resource[] {
  if (yamlFlowNestsDeeperThan(text)) {
    throw badResource(opts.source, `invalid YAML: nests deeper than ${MAX_INPUT_DEPTH} levels`, {});
  }
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const out: Resource[] = [];
  if (!Array.isArray(docs)) return out;
  let index = 0;
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const line = lines.linePos(err.pos[0]).line;
      throw badResource(opts.source, `invalid YAML: ${err.message} (line ${line})`, { line });
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      throw badResource(opts.source, `invalid YAML: ${(e as Error).message}`, {});
    }
    if (value === null || value === undefined) continue;
    if (valueNestsDeeperThan(value)) {
      throw badResource(opts.source, `invalid YAML: nests deeper than ${MAX_INPUT_DEPTH} levels`, {});
    }
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item, i) => {
      const prefix = Array.isArray(value) ? [i] : [];
      const res = checkResource(item, locatorFor(doc.contents, lines, prefix));
      if (res.ok) {
        out.push(res.resource);
      } else {
        const label = resourceLabel(item, index);
        throw badResource(opts.source, issuesMessage(label, res.issues), {
          issues: res.issues satisfies ResourceIssue[],
        });
      }
      index++;
    });
  }
  return out;
}

/**
 * Writes a resource as YAML or JSON, fields in schema order (kind, version, metadata,
 * spec), after validating it. Strings like "on" are quoted so YAML 1.1 tools agree.
 *
 * @example
 *   process.stdout.write(formatResource(role, 'yaml'));
 */
export function formatResource(resource: Resource, format: ResourceFormat): string {
  return printResource(validateResource(resource), format);
}

/**
 * Writes several resources: YAML documents separated by `---`, or one JSON array.
 *
 * @example
 *   process.stdout.write(formatResources(roles, 'yaml'));
 */
export function formatResources(resources: readonly Resource[], format: ResourceFormat): string {
  if (format === 'json')
    return `${JSON.stringify(
      resources.map((r) => validateResource(r)),
      null,
      2,
    )}\n`;
  return resources.map((r) => formatResource(r, 'yaml')).join('---\n');
}
