/**
 * Bounds on structured input (issue 15 item 2): every JSON or YAML value that crosses an edge
 * (RPC bodies, tunnel requests, resource files) nests at most MAX_INPUT_DEPTH levels, so
 * code that walks it recursively (schemas, JSON.stringify, the YAML codec) can't be driven
 * into a stack overflow by a 200 000-deep `[[[…]]]`. The checks themselves never recurse.
 * Who may import: everyone, through `@warden/api`. Tested by `input-limits.test.ts`.
 */
import { WardenError } from './errors';

/** Deepest nesting of arrays and objects any input may have (resources need about 8). */
export const MAX_INPUT_DEPTH = 64;

/**
 * True when the JSON text nests arrays/objects deeper than `max`: a linear scan of the text
 * (strings skipped), done before parsing.
 */
export function jsonNestsDeeperThan(text: string, max: number = MAX_INPUT_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * True when YAML text nests flow collections (`[…]`, `{…}`) deeper than `max`: a linear scan
 * before the YAML parser (which recurses on them) sees the text. Quoted strings and comments
 * are skipped; block nesting is bounded after parsing by `valueNestsDeeperThan`.
 */
export function yamlFlowNestsDeeperThan(text: string, max: number = MAX_INPUT_DEPTH): boolean {
  let depth = 0;
  let quote = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote === 0x22) {
      if (c === 0x5c) i++;
      else if (c === 0x22) quote = 0;
    } else if (quote === 0x27) {
      if (c === 0x27) quote = 0;
    } else if (c === 0x22 || c === 0x27) quote = c;
    else if (c === 0x23 && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl === -1) break;
      i = nl;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
  }
  return false;
}

/** True when a parsed value (from YAML, say) nests deeper than `max`; iterative. */
export function valueNestsDeeperThan(value: unknown, max: number = MAX_INPUT_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) return true;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return false;
}

/**
 * Parses JSON input from outside: BAD_PARAMETER `<what> is not valid JSON` or
 * `<what> nests deeper than 64 levels`.
 *
 * @example
 *   const body = parseJsonInput(text, 'request body');
 */
export function parseJsonInput(text: string, what: string, maxDepth: number = MAX_INPUT_DEPTH): unknown {
  if (jsonNestsDeeperThan(text, maxDepth)) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${what} nests deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${what} is not valid JSON`);
  }
}
