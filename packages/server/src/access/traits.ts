/**
 * Trait templates in role values: `{{internal.logins}}` and `{{external.logins}}` expand to
 * the user's trait values, with an optional literal prefix and suffix (`ci-{{internal.logins}}`).
 * A missing trait, or a template we cannot read, expands to nothing (fail closed).
 * Internal to `access/`; the public surface is `access/index.ts`.
 */

/** Trait name → values, as on the user resource and in certificates. */
export type Traits = Readonly<Record<string, readonly string[]>>;

const TEMPLATE = /^([^{}]*)\{\{\s*(?:internal|external)\.([A-Za-z0-9_.-]+)\s*\}\}([^{}]*)$/;

/**
 * The values one role value stands for.
 *
 * @example
 *   expandTemplate('{{internal.logins}}', { logins: ['alice', 'ubuntu'] }); // ['alice', 'ubuntu']
 *   expandTemplate('root', {}); // ['root']
 *   expandTemplate('{{internal.nope}}', {}); // []
 */
export function expandTemplate(value: string, traits: Traits): string[] {
  if (!value.includes('{{') && !value.includes('}}')) return [value];
  const m = TEMPLATE.exec(value);
  if (!m) return [];
  const [, prefix = '', name = '', suffix = ''] = m;
  const values = Object.hasOwn(traits, name) ? (traits[name] ?? []) : [];
  return values.filter((v) => v.length > 0).map((v) => `${prefix}${v}${suffix}`);
}

/** Every value of a list after expansion, without duplicates, in order. */
export function expandValues(values: readonly string[] | undefined, traits: Traits): string[] {
  const out = new Set<string>();
  for (const value of values ?? []) for (const v of expandTemplate(value, traits)) out.add(v);
  return [...out];
}
