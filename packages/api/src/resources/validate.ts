/**
 * Validation of one resource value against its kind's schema, with messages that name the
 * field path (`spec.allow.loginz: unknown field`) and, when the codec knows them, lines.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import type { z } from 'zod';
import { WardenError } from '../errors';
import { isResourceKind, KIND_NAMES, RESOURCE_KINDS, type ResourceKind } from './kind-names';
import { type Resource, type ResourceByKind, schemaFor } from './kinds';

/** One problem found in a resource. */
export interface ResourceIssue {
  /** Field path, `spec.allow.logins[1]`; empty for the whole document. */
  path: string;
  message: string;
  /** 1-based line in the source text, when parsed from text. */
  line?: number;
}

/** Maps a field path to a source line; `key` asks for the line of the key rather than the value. */
export type LineLocator = (path: readonly PropertyKey[], key: boolean) => number | undefined;

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Formats a path as `spec.allow.logins[1]`; keys that are not identifiers are quoted
 * (`spec.allow.node_labels["team.io/env"]`).
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += SIMPLE_KEY.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

function describe(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'an empty value';
  if (Array.isArray(input)) return 'a list';
  switch (typeof input) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true/false';
    case 'object':
      return 'a mapping';
    default:
      return typeof input;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

/** Warden's wording for zod's default messages; messages set in the schemas take precedence. */
const errorMap = (iss: z.core.$ZodRawIssue): string | undefined => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`;
    case 'invalid_value':
      return iss.values.length === 1
        ? `expected ${JSON.stringify(iss.values[0])}`
        : `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'unrecognized_keys':
      return 'unknown field';
    case 'too_small':
      return iss.minimum === 1 ? 'must not be empty' : `must have at least ${String(iss.minimum)}`;
    case 'too_big':
      return `must have at most ${String(iss.maximum)}`;
    case 'invalid_format':
      return `expected a ${iss.format}`;
    default:
      return undefined;
  }
};

function issuesFromZod(error: z.ZodError, locate: LineLocator | undefined): ResourceIssue[] {
  const out: ResourceIssue[] = [];
  const push = (path: readonly PropertyKey[], message: string, key: boolean) => {
    const line = locate?.(path, key);
    out.push(
      line === undefined ? { path: formatPath(path), message } : { path: formatPath(path), message, line },
    );
  };
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) push([...issue.path, k], 'unknown field', true);
    } else {
      push(issue.path, issue.message, false);
    }
  }
  return out;
}

/** Orders issues by line, then path, so messages read top to bottom. */
function sortIssues(issues: ResourceIssue[]): ResourceIssue[] {
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || a.path.localeCompare(b.path));
}

/** How the message names the resource: `role "dev"`, `role (document 2)`, `document 2`. */
export function resourceLabel(value: unknown, documentIndex?: number): string {
  const obj =
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  const kind = typeof obj.kind === 'string' && obj.kind ? obj.kind : undefined;
  const meta = obj.metadata;
  const name =
    meta !== null && typeof meta === 'object' && typeof (meta as Record<string, unknown>).name === 'string'
      ? ((meta as Record<string, unknown>).name as string)
      : undefined;
  if (kind && name) return `${kind} ${JSON.stringify(name)}`;
  const doc = documentIndex === undefined ? undefined : `document ${documentIndex + 1}`;
  if (kind) return doc ? `${kind} (${doc})` : kind;
  return doc ?? 'resource';
}

/** The message for a list of issues: `role "dev": spec.x: unknown field (line 7); …`. */
export function issuesMessage(label: string, issues: readonly ResourceIssue[]): string {
  const parts = issues.map((i) => {
    const where = i.line === undefined ? '' : ` (line ${i.line})`;
    return i.path ? `${i.path}: ${i.message}${where}` : `${i.message}${where}`;
  });
  return `${label}: ${parts.join('; ')}`;
}

/**
 * Checks one value: a mapping whose kind and version are registered and whose content
 * matches that version's schema. Returns the resource with defaults applied, or the issues.
 */
export function checkResource(
  value: unknown,
  locate?: LineLocator,
): { ok: true; resource: Resource } | { ok: false; issues: ResourceIssue[] } {
  const fail = (path: PropertyKey[], message: string, key = false) => {
    const line = locate?.(path, key);
    const issue: ResourceIssue = { path: formatPath(path), message };
    if (line !== undefined) issue.line = line;
    return { ok: false as const, issues: [issue] };
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail([], 'expected a resource: a mapping with kind, version, metadata and spec');
  }
  const { kind, version } = value as Record<string, unknown>;
  if (kind === undefined) return fail(['kind'], 'required');
  if (!isResourceKind(kind)) {
    return fail(
      ['kind'],
      `unknown kind ${JSON.stringify(kind)} (expected one of: ${RESOURCE_KINDS.join(', ')})`,
    );
  }
  if (version === undefined) return fail(['version'], 'required');
  const schema = typeof version === 'string' ? schemaFor(kind, version) : undefined;
  if (!schema) {
    const supported = KIND_NAMES[kind].versions.join(', ');
    return fail(
      ['version'],
      `unsupported version ${JSON.stringify(version)} for ${kind} (supported: ${supported})`,
    );
  }
  const res = schema.safeParse(value, { error: errorMap });
  if (res.success) return { ok: true, resource: res.data as Resource };
  return { ok: false, issues: sortIssues(issuesFromZod(res.error, locate)) };
}

/**
 * Validates a resource value (from storage or an RPC body) and applies defaults;
 * WARDEN_ERR_BAD_RESOURCE naming every bad field otherwise.
 *
 * @example
 *   const role = validateResource(JSON.parse(text));
 */
export function validateResource(value: unknown): Resource {
  const res = checkResource(value);
  if (res.ok) return res.resource;
  throw new WardenError('WARDEN_ERR_BAD_RESOURCE', issuesMessage(resourceLabel(value), res.issues), {
    issues: res.issues,
  });
}

/**
 * Like `validateResource`, and the resource must be of `kind`.
 *
 * @example
 *   const role = validateResourceOfKind('role', value); // RoleResource
 */
export function validateResourceOfKind<K extends ResourceKind>(kind: K, value: unknown): ResourceByKind[K] {
  const resource = validateResource(value);
  if (resource.kind !== kind) {
    throw new WardenError(
      'WARDEN_ERR_BAD_RESOURCE',
      `${resourceLabel(value)}: kind: expected ${JSON.stringify(kind)}, got ${JSON.stringify(resource.kind)}`,
    );
  }
  return resource as ResourceByKind[K];
}
