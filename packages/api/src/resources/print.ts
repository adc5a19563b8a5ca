/**
 * Resources out as YAML or JSON text, as they are: for resources already validated (the
 * server validates every resource it stores and returns, so its fields are in schema order
 * with defaults applied). No zod here, so `wctl get` prints without constructing the
 * schemas; `formatResource` in codec.ts validates first. Internal to `resources/`; the
 * public surface is `resources/index.ts`.
 */
import { Document, visit } from 'yaml';

export type ResourceFormat = 'yaml' | 'json';

/** Plain YAML 1.2 strings that YAML 1.1 readers would take as booleans: quote them on output. */
const YAML11_BOOLEAN = /^(?:y|yes|n|no|on|off|true|false)$/i;

function toYaml(resource: object): string {
  const doc = new Document(resource);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && YAML11_BOOLEAN.test(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  return doc.toString({ lineWidth: 0 });
}

/**
 * Writes an already validated resource as YAML or JSON in its own field order. Strings like
 * "on" are quoted so YAML 1.1 tools agree.
 *
 * @example
 *   const { items } = await api.listResources('role');
 *   process.stdout.write(items.map((r) => printResource(r, 'yaml')).join('---\n'));
 */
export function printResource(resource: object, format: ResourceFormat): string {
  return format === 'json' ? `${JSON.stringify(resource, null, 2)}\n` : toYaml(resource);
}
