/**
 * Label selectors from roles (`node_labels`, `db_labels`, `app_labels`,
 * `kubernetes_labels`) matched against a resource's labels.
 * Internal to `access/`; the public surface is `access/index.ts`.
 */

export type LabelSelector = Readonly<Record<string, string | readonly string[]>>;
export type Labels = Readonly<Record<string, string>>;

const WILDCARD = '*';

function valueMatches(pattern: string, value: string): boolean {
  if (pattern === WILDCARD) return true;
  if (pattern.startsWith('^') && pattern.endsWith('$') && pattern.length >= 2) {
    try {
      return new RegExp(pattern, 'u').test(value);
    } catch {
      return false; // an invalid expression matches nothing
    }
  }
  if (pattern.includes(WILDCARD)) {
    const escaped = pattern.split(WILDCARD).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return new RegExp(`^${escaped.join('.*')}$`, 'su').test(value);
  }
  return pattern === value;
}

/**
 * True when `labels` satisfy every entry of `selector`. An empty or absent selector matches
 * nothing. `'*': '*'` matches any resource (even one without labels); a value `'*'` matches
 * any value of that label; `^…$` values are regular expressions; other values may use `*`
 * as a glob. A `'*'` key with any other value matches nothing (fail closed).
 *
 * @example
 *   matchLabels({ '*': '*' }, {}); // true
 *   matchLabels({ env: ['staging', '^prod-.*$'] }, { env: 'prod-eu' }); // true
 *   matchLabels({ env: 'prod' }, { team: 'x' }); // false
 */
export function matchLabels(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  for (const [key, raw] of entries) {
    const patterns: readonly string[] = typeof raw === 'string' ? [raw] : raw;
    if (key === WILDCARD) {
      if (!patterns.includes(WILDCARD)) return false;
      continue;
    }
    if (!Object.hasOwn(labels, key)) return false;
    const value = labels[key] ?? '';
    if (!patterns.some((p) => valueMatches(p, value))) return false;
  }
  return true;
}
