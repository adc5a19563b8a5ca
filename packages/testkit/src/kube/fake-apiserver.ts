/**
 * A fake Kubernetes API server — a TEST DOUBLE. No real kube-apiserver can run on these machines,
 * so Warden's Kubernetes tests (and `npm run bench:kube`) talk to this one. It is a real HTTPS
 * server that real `kubectl` (1.32) drives unchanged:
 *
 * - authentication: TLS client certificates from its own CA (CN = user, O = groups) or bearer
 *   tokens; impersonation (`Impersonate-User`, `Impersonate-Group`) checked against its rules and
 *   RECORDED on every request (`requests`), so tests can assert what Warden sent;
 * - authorization: a small rule list (users/groups → verbs on resources in namespaces); the
 *   default lets `system:masters` do everything; SelfSubjectAccessReview (`kubectl auth can-i`)
 *   and SelfSubjectReview (`kubectl auth whoami`) answer for the impersonated user;
 * - namespaces, pods, configmaps, secrets (and an always-empty events list) in memory, with one
 *   resourceVersion counter, list + watch (resumable from a resourceVersion; label and
 *   `metadata.name`/`metadata.namespace` field selectors), create, update, delete, and patch
 *   (merge, strategic-merge treated as merge, server-side apply treated as merge);
 * - discovery: aggregated discovery v2 (`apidiscovery.k8s.io/v2`) and the legacy documents;
 *   `Table` responses (`kubectl get`, also for watch events), `/version`;
 * - pods run their containers' `command` as real local processes (logs are their output;
 *   `logs -f` streams it); exec/attach run real local processes over WebSocket
 *   `v5.channel.k8s.io` (a PTY via node-pty for `tty=true`, resize on channel 4, the exit status
 *   on channel 3); port-forward over WebSocket-tunnelled SPDY (`SPDY/3.1+portforward.k8s.io`)
 *   connects to 127.0.0.1:<pod port> (pods share the host's network here).
 *
 * Left out (a real API server has them): etcd and persistence, admission, defaulting and schema
 * validation (OpenAPI documents are not served), real server-side apply field ownership and
 * strategic merge of lists (lists are replaced), JSON patch, status subresources, graceful
 * deletion and finalizers, other resource kinds and API groups, RBAC objects, SPDY-only (non
 * WebSocket) exec/port-forward upgrades, watch bookmarks, pagination (`limit`/`continue`),
 * protobuf, HTTP/2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { type CertFiles, TestPki } from './pki';
import { decodeKubeProtobuf } from './protobuf';
import { SpdyServerSession, type SpdyStream } from './spdy';
import { acceptWebSocket, offeredProtocols, type WsConn } from './websocket';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects of any kind, as JSON
type Obj = Record<string, any>;

export interface KubeRule {
  users?: string[];
  groups?: string[];
  /** `*` or verbs (get, list, watch, create, update, patch, delete, impersonate). */
  verbs: string[];
  /** `*`, `pods`, `pods/exec`, `users` (impersonate) … */
  resources: string[];
  /** Omitted: every namespace and cluster scope. */
  namespaces?: string[];
}

export interface FakeKubeOptions {
  /** Rules added to the default (`system:masters` may do everything). */
  rules?: KubeRule[];
  /** Bearer tokens accepted in addition to the admin token. */
  tokens?: Record<string, { user: string; groups?: string[] }>;
}

export interface KubeRequestAttributes {
  user: string;
  groups: string[];
  verb: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  path: string;
}

export interface RecordedKubeRequest {
  method: string;
  path: string;
  query: string;
  /** Who authenticated (the client certificate or token). */
  authUser: string;
  authGroups: string[];
  impersonateUser?: string;
  impersonateGroups: string[];
  /** Every header whose name starts with impersonate- (lower-case names). */
  impersonateHeaders: Record<string, string | string[]>;
  verb: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  status?: number;
}

export interface RecordedExec {
  namespace: string;
  pod: string;
  command: string[];
  tty: boolean;
  user: string;
  resizes: { width: number; height: number }[];
  exitCode?: number;
}

export interface FakeKubeApiServer {
  /** `https://127.0.0.1:<port>` */
  url: string;
  port: number;
  dir: string;
  ca: CertFiles;
  /** A client certificate for `fake-admin` in `system:masters`. */
  admin: CertFiles;
  adminToken: string;
  /** A file holding adminToken (for `token_file` configs). */
  adminTokenFile: string;
  requests: RecordedKubeRequest[];
  execs: RecordedExec[];
  portForwards: { namespace: string; pod: string; port: number; user: string }[];
  /** Issues a client certificate (CN = user, O = groups) from the fake's CA. */
  clientCert(user: string, groups?: string[]): CertFiles;
  /**
   * The `kube_service:` section of a warden.yaml that serves this API server as cluster
   * `fake` (labelled `labels`, YAML flow, e.g. `env: test`) with the admin certificate.
   */
  kubeServiceYaml(labels: string): string;
  /** Writes a kubeconfig for direct access (admin certificate unless told otherwise). */
  writeKubeconfig(path: string, opts?: { cert?: CertFiles; token?: string; namespace?: string }): string;
  /** Creates an object as the admin would (namespace `default` unless given). */
  create(resource: string, obj: Obj, namespace?: string): Obj;
  get(resource: string, name: string, namespace?: string): Obj | undefined;
  addRules(rules: KubeRule[]): void;
  /** Open watch, logs -f, exec and port-forward streams (for lock tests). */
  openStreams(): number;
  close(): Promise<void>;
}

interface Column {
  name: string;
  type: string;
  format?: string;
  priority?: number;
  description?: string;
}

interface ResourceDef {
  name: string;
  singular: string;
  kind: string;
  group: string;
  version: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  subresources: { name: string; kind: string; verbs: string[] }[];
  columns: Column[];
  cells(o: Obj): unknown[];
}

const CRUD = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

/** A review (`kubectl auth can-i`, `kubectl auth whoami`): cluster-wide, create only, nothing stored. */
function review(kind: string, group: string): ResourceDef {
  const singular = kind.toLowerCase();
  return {
    name: `${singular}s`,
    singular,
    kind,
    group,
    version: 'v1',
    namespaced: false,
    shortNames: [],
    verbs: ['create'],
    subresources: [],
    columns: [],
    cells: () => [],
  };
}

function age(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

const nameCol: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name' };
const ageCol: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp' };

function podStatusText(p: Obj): string {
  const phase = p.status?.phase ?? 'Pending';
  if (phase === 'Succeeded') return 'Completed';
  if (phase === 'Failed') return 'Error';
  return phase;
}

const RESOURCES: ResourceDef[] = [
  {
    name: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    group: '',
    version: 'v1',
    namespaced: false,
    shortNames: ['ns'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    subresources: [],
    columns: [nameCol, { name: 'Status', type: 'string' }, ageCol],
    cells: (o) => [o.metadata.name, o.status?.phase ?? 'Active', age(o.metadata.creationTimestamp)],
  },
  {
    name: 'pods',
    singular: 'pod',
    kind: 'Pod',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['po'],
    verbs: CRUD,
    subresources: [
      { name: 'attach', kind: 'PodAttachOptions', verbs: ['create', 'get'] },
      { name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] },
      { name: 'log', kind: 'Pod', verbs: ['get'] },
      { name: 'portforward', kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
    ],
    columns: [
      nameCol,
      { name: 'Ready', type: 'string' },
      { name: 'Status', type: 'string' },
      { name: 'Restarts', type: 'string' },
      ageCol,
      { name: 'IP', type: 'string', priority: 1 },
      { name: 'Node', type: 'string', priority: 1 },
    ],
    cells: (o) => {
      const cs: Obj[] = o.status?.containerStatuses ?? [];
      const total = o.spec?.containers?.length ?? 0;
      return [
        o.metadata.name,
        `${cs.filter((c) => c.ready).length}/${total}`,
        podStatusText(o),
        '0',
        age(o.metadata.creationTimestamp),
        o.status?.podIP ?? '<none>',
        o.spec?.nodeName ?? '<none>',
      ];
    },
  },
  {
    name: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['cm'],
    verbs: CRUD,
    subresources: [],
    columns: [nameCol, { name: 'Data', type: 'integer' }, ageCol],
    cells: (o) => [
      o.metadata.name,
      Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length,
      age(o.metadata.creationTimestamp),
    ],
  },
  {
    name: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: [],
    verbs: CRUD,
    subresources: [],
    columns: [nameCol, { name: 'Type', type: 'string' }, { name: 'Data', type: 'integer' }, ageCol],
    cells: (o) => [
      o.metadata.name,
      o.type ?? 'Opaque',
      Object.keys(o.data ?? {}).length,
      age(o.metadata.creationTimestamp),
    ],
  },
  {
    name: 'events',
    singular: 'event',
    kind: 'Event',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['ev'],
    verbs: CRUD,
    subresources: [],
    columns: [nameCol, ageCol],
    cells: (o) => [o.metadata.name, age(o.metadata.creationTimestamp)],
  },
  review('SelfSubjectAccessReview', 'authorization.k8s.io'),
  review('SelfSubjectReview', 'authentication.k8s.io'),
];

const CORE = RESOURCES.filter((r) => r.group === '');
const GROUPS = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];

// ---------------------------------------------------------------- discovery

function discoveryResource(r: ResourceDef): Obj {
  return {
    resource: r.name,
    responseKind: { group: r.group, version: r.version, kind: r.kind },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    ...(r.name === 'pods' || r.name === 'configmaps' || r.name === 'secrets' ? { categories: ['all'] } : {}),
    ...(r.subresources.length
      ? {
          subresources: r.subresources.map((s) => ({
            subresource: s.name,
            responseKind: { group: '', version: 'v1', kind: s.kind },
            verbs: s.verbs,
          })),
        }
      : {}),
  };
}

function aggregated(groups: { name: string; resources: ResourceDef[] }[]): Obj {
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: groups.map((g) => ({
      metadata: { name: g.name },
      versions: [{ version: 'v1', resources: g.resources.map(discoveryResource), freshness: 'Current' }],
    })),
  };
}

function legacyResourceList(groupVersion: string, resources: ResourceDef[]): Obj {
  const out: Obj[] = [];
  for (const r of resources) {
    out.push({
      name: r.name,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    });
    for (const s of r.subresources) {
      out.push({
        name: `${r.name}/${s.name}`,
        singularName: '',
        namespaced: r.namespaced,
        kind: s.kind,
        verbs: s.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources: out };
}

// ---------------------------------------------------------------- helpers

/**
 * A minimal OpenAPI v3 document per group-version: only the PATCH operations with their
 * group-version-kind and the `fieldValidation` query parameter, which is what kubectl reads to
 * decide that the server validates fields itself (so it skips client-side schema validation).
 */
function openApiV3(resources: ResourceDef[]): Obj {
  const paths: Obj = {};
  for (const r of resources) {
    const prefix = r.group ? `/apis/${r.group}/v1` : '/api/v1';
    const p = r.namespaced
      ? `${prefix}/namespaces/{namespace}/${r.name}/{name}`
      : `${prefix}/${r.name}/{name}`;
    paths[p] = {
      patch: {
        'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
        parameters: [{ name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } }],
        responses: {},
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (fake)', version: 'v1.32.0' }, paths };
}

function status(code: number, reason: string, message: string, details?: Obj): Obj {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

class HttpError extends Error {
  constructor(readonly body: Obj) {
    super(body.message);
  }
}

function notFound(r: ResourceDef, name: string): HttpError {
  const what = r.group ? `${r.name}.${r.group}` : r.name;
  return new HttpError(status(404, 'NotFound', `${what} "${name}" not found`, { name, kind: r.name }));
}

function clone<T>(o: T): T {
  return structuredClone(o);
}

/** RFC 7386 JSON merge patch; `$`-directives of strategic merge patches are dropped. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Obj =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A selector (`a=b,c!=d`): a test every one of its comma-separated terms must pass. */
function parseSelector<T>(
  sel: string | null,
  term: (p: string, o: T) => boolean,
): ((o: T) => boolean) | undefined {
  if (!sel) return undefined;
  const parts = sel
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return (o) => parts.every((p) => term(p, o));
}

function parseLabelSelector(sel: string | null): ((labels: Obj) => boolean) | undefined {
  return parseSelector<Obj>(sel, (p, labels) => {
    const ne = p.split('!=');
    if (ne.length === 2) return labels[ne[0]!.trim()] !== ne[1]!.trim();
    const eq = p.split(/==?/);
    if (eq.length === 2) return labels[eq[0]!.trim()] === eq[1]!.trim();
    if (p.startsWith('!')) return !(p.slice(1) in labels);
    return p in labels;
  });
}

function parseFieldSelector(sel: string | null): ((o: Obj) => boolean) | undefined {
  return parseSelector<Obj>(sel, (p, o) => {
    const neg = p.includes('!=');
    const [k, v] = neg ? p.split('!=') : p.split(/==?/);
    let actual: unknown;
    if (k === 'metadata.name') actual = o.metadata?.name;
    else if (k === 'metadata.namespace') actual = o.metadata?.namespace;
    else if (k === 'status.phase') actual = o.status?.phase;
    else if (k === 'spec.nodeName') actual = o.spec?.nodeName;
    else if (k?.startsWith('involvedObject.')) actual = o.involvedObject?.[k.slice('involvedObject.'.length)];
    else return true;
    return neg ? actual !== v : actual === v;
  });
}

/** What a list or watch's `labelSelector` and `fieldSelector` let through. */
function selectedBy(q: URLSearchParams): (o: Obj) => boolean {
  const lf = parseLabelSelector(q.get('labelSelector'));
  const ff = parseFieldSelector(q.get('fieldSelector'));
  return (o) => (!lf || lf(o.metadata.labels ?? {})) && (!ff || ff(o));
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
  rv: number;
  resource: string;
}

interface Watcher {
  resource: string;
  namespace?: string;
  filter(o: Obj): boolean;
  send(e: WatchEvent): void;
}

interface ContainerProc {
  log: Buffer[];
  followers: Set<(chunk: Buffer | null) => void>;
  done: boolean;
  child?: ChildProcess;
}

function ruleAllows(rules: KubeRule[], a: KubeRequestAttributes): boolean {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : (a.resource ?? '');
  return rules.some(
    (r) =>
      ((r.users ?? []).includes(a.user) || (r.groups ?? []).some((g) => a.groups.includes(g))) &&
      (r.verbs.includes('*') || r.verbs.includes(a.verb)) &&
      (r.resources.includes('*') || r.resources.includes(res)) &&
      (!r.namespaces || (a.namespace !== undefined && r.namespaces.includes(a.namespace))),
  );
}

function headerList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

// ---------------------------------------------------------------- the server

/**
 * The fake where the users of `group` may do anything, with one pod `web` in `default` (a
 * container `main`, busybox sleeping): what the kube tests exec, port-forward and audit.
 */
export async function startFakeKubeWithWebPod(group: string): Promise<FakeKubeApiServer> {
  const fake = await startFakeKubeApiServer({ rules: [{ groups: [group], verbs: ['*'], resources: ['*'] }] });
  fake.create('pods', {
    metadata: { name: 'web' },
    spec: { containers: [{ name: 'main', image: 'busybox', command: ['sleep', '3600'] }] },
  });
  return fake;
}

/** Starts the fake API server on 127.0.0.1 (port 0 unless given). */
export async function startFakeKubeApiServer(opts: FakeKubeOptions = {}): Promise<FakeKubeApiServer> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-fake-kube-'));
  const pki = new TestPki(dir);
  const serving = pki.issue('apiserver', 'fake-kube-apiserver', [], 'server');
  const admin = pki.issue('admin', 'fake-admin', ['system:masters'], 'client');
  const adminToken = randomBytes(24).toString('base64url');
  const adminTokenFile = join(dir, 'admin.token');
  writeFileSync(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });
  const tokens = new Map<string, { user: string; groups: string[] }>([
    [adminToken, { user: 'fake-admin-token', groups: ['system:masters'] }],
  ]);
  for (const [t, u] of Object.entries(opts.tokens ?? {}))
    tokens.set(t, { user: u.user, groups: u.groups ?? [] });
  const rules: KubeRule[] = [
    { groups: ['system:masters'], verbs: ['*'], resources: ['*'] },
    ...(opts.rules ?? []),
  ];

  let rv = 1;
  const objects = new Map<string, Obj>(); // `${resource}/${ns}/${name}`
  const history: WatchEvent[] = [];
  const watchers = new Set<Watcher>();
  const procs = new Map<string, ContainerProc>(); // `${ns}/${pod}/${container}`
  const liveStreams = new Set<{ end(): void }>();
  const requests: RecordedKubeRequest[] = [];
  const execs: RecordedExec[] = [];
  const portForwards: FakeKubeApiServer['portForwards'] = [];
  const podRoot = join(dir, 'pods');
  mkdirSync(podRoot);

  const key = (r: ResourceDef, ns: string | undefined, name: string) => `${r.name}/${ns ?? ''}/${name}`;
  const def = (name: string) => RESOURCES.find((r) => r.name === name);

  function record(type: WatchEvent['type'], r: ResourceDef, obj: Obj): void {
    const e: WatchEvent = { type, object: clone(obj), rv, resource: r.name };
    history.push(e);
    if (history.length > 10_000) history.shift();
    for (const w of watchers) {
      if (w.resource !== r.name) continue;
      if (w.namespace !== undefined && obj.metadata.namespace !== w.namespace) continue;
      if (w.filter(obj)) w.send(e);
    }
  }

  function store(r: ResourceDef, obj: Obj, type: WatchEvent['type']): Obj {
    rv++;
    obj.metadata.resourceVersion = String(rv);
    objects.set(key(r, obj.metadata.namespace, obj.metadata.name), obj);
    record(type, r, obj);
    return obj;
  }

  function remove(r: ResourceDef, ns: string | undefined, name: string): Obj {
    const k = key(r, ns, name);
    const obj = objects.get(k);
    if (!obj) throw notFound(r, name);
    objects.delete(k);
    rv++;
    obj.metadata.resourceVersion = String(rv);
    if (r.name === 'pods') stopPod(obj);
    if (r.name === 'namespaces') {
      for (const [k2, o] of [...objects]) {
        if (o.metadata.namespace !== name) continue;
        const r2 = def(k2.split('/')[0]!)!;
        remove(r2, name, o.metadata.name);
      }
    }
    record('DELETED', r, obj);
    return obj;
  }

  function createObject(r: ResourceDef, ns: string | undefined, body: Obj, dryRun = false): Obj {
    if (!body || typeof body !== 'object')
      throw new HttpError(status(400, 'BadRequest', 'request body must be an object'));
    const obj = clone(body);
    obj.apiVersion = r.group ? `${r.group}/${r.version}` : r.version;
    obj.kind = r.kind;
    obj.metadata ??= {};
    if (!obj.metadata.name && obj.metadata.generateName) {
      obj.metadata.name = `${obj.metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    }
    const name = obj.metadata.name;
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
      throw new HttpError(
        status(422, 'Invalid', `${r.kind} "${name ?? ''}" is invalid: metadata.name: Invalid value`, {
          kind: r.name,
        }),
      );
    }
    if (r.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== ns) {
        throw new HttpError(
          status(
            400,
            'BadRequest',
            'the namespace of the provided object does not match the namespace sent on the request',
          ),
        );
      }
      obj.metadata.namespace = ns;
      if (!objects.has(key(def('namespaces')!, undefined, ns!))) {
        throw new HttpError(
          status(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' }),
        );
      }
    } else delete obj.metadata.namespace;
    if (objects.has(key(r, obj.metadata.namespace, name))) {
      throw new HttpError(
        status(409, 'AlreadyExists', `${r.name} "${name}" already exists`, { name, kind: r.name }),
      );
    }
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (r.name === 'secrets') {
      obj.type ??= 'Opaque';
      if (obj.stringData) {
        obj.data = { ...(obj.data ?? {}) };
        for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) {
          obj.data[k] = Buffer.from(v).toString('base64');
        }
        delete obj.stringData;
      }
    }
    if (r.name === 'namespaces') obj.status = { phase: 'Active' };
    if (r.name === 'pods') preparePod(obj);
    if (dryRun) return obj;
    store(r, obj, 'ADDED');
    if (r.name === 'pods') startPod(obj);
    return obj;
  }

  function preparePod(p: Obj): void {
    p.spec ??= {};
    const containers: Obj[] = p.spec.containers ?? [];
    if (!Array.isArray(containers) || containers.length === 0 || containers.some((c) => !c?.name)) {
      throw new HttpError(
        status(422, 'Invalid', `Pod "${p.metadata.name}" is invalid: spec.containers: Required value`, {
          kind: 'pods',
        }),
      );
    }
    p.spec.nodeName ??= 'fake-node';
    p.spec.restartPolicy ??= 'Always';
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    p.status = {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      startTime: now,
      conditions: [
        { type: 'Ready', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
      ],
      containerStatuses: containers.map((c) => ({
        name: c.name,
        image: c.image ?? 'fake',
        imageID: '',
        containerID: `fake://${randomBytes(8).toString('hex')}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    };
  }

  function startPod(p: Obj): void {
    const ns = p.metadata.namespace as string;
    const podDir = join(podRoot, `${ns}_${p.metadata.name}_${p.metadata.uid}`);
    mkdirSync(podDir, { recursive: true });
    let running = 0;
    for (const c of p.spec.containers as Obj[]) {
      const proc: ContainerProc = { log: [], followers: new Set(), done: false };
      procs.set(`${ns}/${p.metadata.name}/${c.name}`, proc);
      const argv = [...(c.command ?? []), ...(c.args ?? [])] as string[];
      if (argv.length === 0) continue; // an idle container: running, no output
      running++;
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: podDir,
        env: podEnv(p),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      proc.child = child;
      const onOut = (b: Buffer) => {
        proc.log.push(b);
        for (const f of proc.followers) f(b);
      };
      child.stdout!.on('data', onOut);
      child.stderr!.on('data', onOut);
      child.stdin!.on('error', () => {});
      child.on('error', (err) => onOut(Buffer.from(`fake kubelet: ${err.message}\n`)));
      child.on('close', (code) => {
        proc.done = true;
        for (const f of proc.followers) f(null);
        proc.followers.clear();
        const cur = objects.get(key(def('pods')!, ns, p.metadata.name));
        if (!cur || cur.metadata.uid !== p.metadata.uid) return;
        const next = clone(cur);
        const st = next.status.containerStatuses.find((s: Obj) => s.name === c.name);
        st.ready = false;
        st.started = false;
        st.state = { terminated: { exitCode: code ?? 137, reason: code === 0 ? 'Completed' : 'Error' } };
        running--;
        if (running === 0) {
          next.status.phase = next.status.containerStatuses.every(
            (s: Obj) => s.state.terminated?.exitCode === 0,
          )
            ? 'Succeeded'
            : 'Failed';
        }
        store(def('pods')!, next, 'MODIFIED');
      });
    }
  }

  function stopPod(p: Obj): void {
    for (const c of (p.spec?.containers ?? []) as Obj[]) {
      const k = `${p.metadata.namespace}/${p.metadata.name}/${c.name}`;
      const proc = procs.get(k);
      procs.delete(k);
      if (!proc) continue;
      proc.child?.kill('SIGKILL');
      proc.done = true;
      for (const f of proc.followers) f(null);
      proc.followers.clear();
    }
  }

  function podEnv(p: Obj): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      HOSTNAME: p.metadata.name,
      POD_NAME: p.metadata.name,
      POD_NAMESPACE: p.metadata.namespace,
    };
  }

  for (const ns of ['default', 'kube-system', 'kube-public'])
    createObject(def('namespaces')!, undefined, { metadata: { name: ns } });

  // ---------------------------------------------------------------- request parsing

  interface Target {
    r?: ResourceDef;
    namespace?: string;
    name?: string;
    subresource?: string;
    verb: string;
  }

  function parsePath(method: string, path: string, query: URLSearchParams): Target {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    let rest: string[];
    if (seg[0] === 'api' && seg[1] === 'v1') rest = seg.slice(2);
    else if (seg[0] === 'apis' && seg.length >= 3 && GROUPS.includes(seg[1]!) && seg[2] === 'v1')
      rest = seg.slice(3);
    else return { verb: method.toLowerCase() };
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const group = seg[0] === 'api' ? '' : seg[1]!;
    const r = RESOURCES.find((x) => x.name === rest[0] && x.group === group);
    if (!r) return { verb: method.toLowerCase(), namespace };
    const name = rest[1];
    const subresource = rest[2];
    if (r.name === 'namespaces' && name && !subresource) namespace = name;
    const watch = query.get('watch') === 'true' || query.get('watch') === '1';
    let verb: string;
    if (subresource && ['exec', 'attach', 'portforward'].includes(subresource)) verb = 'create';
    else if (method === 'GET' || method === 'HEAD') verb = watch ? 'watch' : name ? 'get' : 'list';
    else if (method === 'POST') verb = 'create';
    else if (method === 'PUT') verb = 'update';
    else if (method === 'PATCH') verb = 'patch';
    else if (method === 'DELETE') verb = name ? 'delete' : 'deletecollection';
    else verb = method.toLowerCase();
    return { r, namespace, name, subresource, verb };
  }

  interface Who {
    user: string;
    groups: string[];
    authUser: string;
    authGroups: string[];
  }

  function authenticate(req: IncomingMessage): { user: string; groups: string[] } | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const t = tokens.get(auth.slice(7).trim());
      return t ? { user: t.user, groups: t.groups } : undefined;
    }
    const sock = req.socket as TLSSocket;
    if (!sock.authorized) return undefined;
    const cert = sock.getPeerCertificate();
    if (!cert?.subject) return undefined;
    const cn = cert.subject.CN;
    const o = cert.subject.O;
    const user = Array.isArray(cn) ? cn[0] : cn;
    if (!user) return undefined;
    return { user, groups: o === undefined ? [] : Array.isArray(o) ? o : [o] };
  }

  /** Authenticates, applies impersonation, records the request; throws HttpError on refusal. */
  function admit(req: IncomingMessage, url: URL, t: Target, rec: RecordedKubeRequest): Who {
    const authn = authenticate(req);
    if (!authn) throw new HttpError(status(401, 'Unauthorized', 'Unauthorized'));
    rec.authUser = authn.user;
    rec.authGroups = authn.groups;
    const impUser = req.headers['impersonate-user'];
    const impGroups = headerList(req.headers['impersonate-group']);
    const impUserStr = Array.isArray(impUser) ? impUser[0] : impUser;
    rec.impersonateUser = impUserStr;
    rec.impersonateGroups = impGroups;
    let who: Who = { ...authn, authUser: authn.user, authGroups: authn.groups };
    if (impUserStr !== undefined || impGroups.length) {
      if (impUserStr === undefined) {
        throw new HttpError(
          status(400, 'BadRequest', 'requested impersonation of groups without impersonating a user'),
        );
      }
      const base = {
        user: authn.user,
        groups: [...authn.groups, 'system:authenticated'],
        path: url.pathname,
      };
      const mayImpersonate = (resource: 'users' | 'groups', name: string) => {
        if (!ruleAllows(rules, { ...base, verb: 'impersonate', resource, name })) {
          throw new HttpError(
            status(
              403,
              'Forbidden',
              `${resource} "${name}" is forbidden: User "${authn.user}" cannot impersonate resource "${resource}" in API group "" at the cluster scope`,
            ),
          );
        }
      };
      mayImpersonate('users', impUserStr);
      for (const g of impGroups) mayImpersonate('groups', g);
      who = { user: impUserStr, groups: impGroups, authUser: authn.user, authGroups: authn.groups };
    }
    const groups = who.groups.includes('system:authenticated')
      ? who.groups
      : [...who.groups, 'system:authenticated'];
    who = { ...who, groups };
    if (t.r && !['selfsubjectaccessreviews', 'selfsubjectreviews'].includes(t.r.name)) {
      const attrs: KubeRequestAttributes = {
        user: who.user,
        groups: who.groups,
        verb: t.verb,
        resource: t.r.name,
        subresource: t.subresource,
        namespace: t.r.namespaced || t.r.name === 'namespaces' ? t.namespace : undefined,
        name: t.name,
        path: url.pathname,
      };
      if (!ruleAllows(rules, attrs)) {
        const res = t.subresource ? `${t.r.name}/${t.subresource}` : t.r.name;
        const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : 'at the cluster scope';
        const what = t.name ? `${res} "${t.name}"` : res;
        throw new HttpError(
          status(
            403,
            'Forbidden',
            `${what} is forbidden: User "${who.user}" cannot ${t.verb} resource "${res}" in API group "${t.r.group}" ${scope}`,
            { name: t.name, kind: t.r.name },
          ),
        );
      }
    }
    return who;
  }

  function newRecord(req: IncomingMessage, url: URL, t: Target): RecordedKubeRequest {
    const imp: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (k.startsWith('impersonate-') && v !== undefined) imp[k] = v;
    const rec: RecordedKubeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      authUser: '',
      authGroups: [],
      impersonateGroups: [],
      impersonateHeaders: imp,
      verb: t.verb,
      resource: t.r?.name,
      subresource: t.subresource,
      namespace: t.namespace,
      name: t.name,
    };
    requests.push(rec);
    return rec;
  }

  // ---------------------------------------------------------------- responses

  function send(res: ServerResponse, code: number, body: Obj, contentType = 'application/json'): void {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(code, { 'content-type': contentType, 'content-length': data.length });
    res.end(data);
  }

  function wantsTable(req: IncomingMessage): boolean {
    return /as=Table/.test(req.headers.accept ?? '');
  }
  function wantsPartial(req: IncomingMessage): boolean {
    return /as=PartialObjectMetadata/.test(req.headers.accept ?? '');
  }

  function table(r: ResourceDef, items: Obj[], resourceVersion: string): Obj {
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion },
      columnDefinitions: (r.columns.length ? r.columns : [nameCol, ageCol]).map((c) => ({
        name: c.name,
        type: c.type,
        format: c.format ?? '',
        description: c.description ?? '',
        priority: c.priority ?? 0,
      })),
      rows: items.map((o) => ({ cells: r.cells(o), object: o })),
    };
  }

  function partial(o: Obj): Obj {
    return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
  }

  function render(req: IncomingMessage, r: ResourceDef, o: Obj): Obj {
    if (wantsTable(req)) return table(r, [o], o.metadata.resourceVersion);
    if (wantsPartial(req)) return partial(o);
    return o;
  }

  async function readBody(req: IncomingMessage): Promise<Obj> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    if ((req.headers['content-type'] ?? '').startsWith('application/vnd.kubernetes.protobuf')) {
      try {
        return decodeKubeProtobuf(raw);
      } catch (err) {
        throw new HttpError(status(415, 'UnsupportedMediaType', (err as Error).message));
      }
    }
    const text = raw.toString('utf8');
    if (!text.trim()) return {};
    try {
      return JSON.parse(text);
    } catch {
      try {
        return parseYaml(text) as Obj;
      } catch (err) {
        throw new HttpError(
          status(400, 'BadRequest', `cannot parse the request body: ${(err as Error).message}`),
        );
      }
    }
  }

  function listItems(r: ResourceDef, ns: string | undefined, q: URLSearchParams): Obj[] {
    const selected = selectedBy(q);
    const out: Obj[] = [];
    for (const [k, o] of objects) {
      if (!k.startsWith(`${r.name}/`)) continue;
      if (ns !== undefined && r.namespaced && o.metadata.namespace !== ns) continue;
      if (selected(o)) out.push(o);
    }
    return out.sort((a, b) =>
      `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(
        `${b.metadata.namespace ?? ''}/${b.metadata.name}`,
      ),
    );
  }

  function watch(
    req: IncomingMessage,
    res: ServerResponse,
    r: ResourceDef,
    t: Target,
    q: URLSearchParams,
  ): void {
    const filter = selectedBy(q);
    const ns = r.namespaced ? t.namespace : undefined;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const asTable = wantsTable(req);
    const write = (type: string, o: Obj) => {
      const object = asTable ? table(r, [o], o.metadata.resourceVersion) : wantsPartial(req) ? partial(o) : o;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const fromRv = q.get('resourceVersion');
    if (!fromRv || fromRv === '0') {
      for (const o of listItems(r, ns, q)) write('ADDED', o);
    } else {
      const since = Number(fromRv);
      if (!Number.isFinite(since)) {
        res.end(
          `${JSON.stringify({ type: 'ERROR', object: status(400, 'BadRequest', 'invalid resourceVersion') })}\n`,
        );
        return;
      }
      for (const e of history) {
        if (e.rv <= since || e.resource !== r.name) continue;
        if (ns !== undefined && e.object.metadata.namespace !== ns) continue;
        if (filter(e.object)) write(e.type, e.object);
      }
    }
    const w: Watcher = {
      resource: r.name,
      namespace: ns,
      filter,
      send: (e) => write(e.type, e.object),
    };
    watchers.add(w);
    const live = { end: () => res.end() };
    liveStreams.add(live);
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    const done = () => {
      watchers.delete(w);
      liveStreams.delete(live);
      if (timer) clearTimeout(timer);
    };
    res.on('close', done);
    res.on('finish', done);
  }

  function logs(res: ServerResponse, pod: Obj, q: URLSearchParams): void {
    const containers = (pod.spec.containers as Obj[]).map((c) => c.name as string);
    const container = q.get('container') ?? (containers.length === 1 ? containers[0] : undefined);
    if (!container) {
      throw new HttpError(
        status(
          400,
          'BadRequest',
          `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${containers.join(' ')}]`,
        ),
      );
    }
    if (!containers.includes(container)) {
      throw new HttpError(
        status(400, 'BadRequest', `container ${container} is not valid for pod ${pod.metadata.name}`),
      );
    }
    const proc = procs.get(`${pod.metadata.namespace}/${pod.metadata.name}/${container}`);
    let text = Buffer.concat(proc?.log ?? []);
    const tail = q.get('tailLines');
    if (tail !== null) {
      const lines = text.toString('utf8').split('\n');
      const last = lines[lines.length - 1] === '' ? lines.slice(0, -1) : lines;
      const n = Math.max(0, Number(tail));
      text = Buffer.from(
        last
          .slice(Math.max(0, last.length - n))
          .map((l) => `${l}\n`)
          .join(''),
      );
    }
    const follow = q.get('follow') === 'true';
    res.writeHead(200, {
      'content-type': 'text/plain',
      ...(follow ? { 'transfer-encoding': 'chunked' } : {}),
    });
    if (!follow || !proc || proc.done) {
      res.end(text);
      return;
    }
    if (text.length) res.write(text);
    else res.flushHeaders();
    const f = (chunk: Buffer | null) => {
      if (chunk === null) res.end();
      else res.write(chunk);
    };
    proc.followers.add(f);
    const live = { end: () => res.end() };
    liveStreams.add(live);
    res.on('close', () => {
      proc.followers.delete(f);
      liveStreams.delete(live);
    });
  }

  function discovery(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const aggregatedAccept = /g=apidiscovery\.k8s\.io;v=v2(?![0-9a-z])/.test(req.headers.accept ?? '');
    const ct = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
    if (path === '/api') {
      if (aggregatedAccept) send(res, 200, aggregated([{ name: '', resources: CORE }]), ct);
      else
        send(res, 200, {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }],
        });
      return true;
    }
    if (path === '/apis') {
      const groups = GROUPS.map((g) => ({ name: g, resources: RESOURCES.filter((r) => r.group === g) }));
      if (aggregatedAccept) send(res, 200, aggregated(groups), ct);
      else
        send(res, 200, {
          kind: 'APIGroupList',
          apiVersion: 'v1',
          groups: GROUPS.map((g) => ({
            name: g,
            versions: [{ groupVersion: `${g}/v1`, version: 'v1' }],
            preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' },
          })),
        });
      return true;
    }
    if (path === '/api/v1') {
      send(res, 200, legacyResourceList('v1', CORE));
      return true;
    }
    for (const g of GROUPS) {
      if (path === `/apis/${g}/v1`) {
        send(
          res,
          200,
          legacyResourceList(
            `${g}/v1`,
            RESOURCES.filter((r) => r.group === g),
          ),
        );
        return true;
      }
      if (path === `/apis/${g}`) {
        send(res, 200, {
          kind: 'APIGroup',
          apiVersion: 'v1',
          name: g,
          versions: [{ groupVersion: `${g}/v1`, version: 'v1' }],
          preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' },
        });
        return true;
      }
    }
    if (path === '/openapi/v3') {
      const paths: Obj = { 'api/v1': { serverRelativeURL: '/openapi/v3/api/v1?hash=fake' } };
      for (const g of GROUPS)
        paths[`apis/${g}/v1`] = { serverRelativeURL: `/openapi/v3/apis/${g}/v1?hash=fake` };
      send(res, 200, { paths });
      return true;
    }
    const gv = path === '/openapi/v3/api/v1' ? '' : GROUPS.find((g) => path === `/openapi/v3/apis/${g}/v1`);
    if (gv !== undefined) {
      send(res, 200, openApiV3(RESOURCES.filter((r) => r.group === gv)));
      return true;
    }
    if (path === '/version') {
      send(res, 200, {
        major: '1',
        minor: '32',
        gitVersion: 'v1.32.0-warden-fake',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2026-01-01T00:00:00Z',
        goVersion: 'go1.23.0',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
      return true;
    }
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return true;
    }
    return false;
  }

  function reviews(r: ResourceDef, body: Obj, who: Who): Obj {
    if (r.name === 'selfsubjectreviews') {
      return {
        kind: 'SelfSubjectReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { creationTimestamp: null },
        status: { userInfo: { username: who.user, groups: who.groups } },
      };
    }
    const ra = body.spec?.resourceAttributes as Obj | undefined;
    const nra = body.spec?.nonResourceAttributes as Obj | undefined;
    let allowed = false;
    if (ra) {
      allowed = ruleAllows(rules, {
        user: who.user,
        groups: who.groups,
        verb: ra.verb ?? '',
        resource: ra.resource,
        subresource: ra.subresource || undefined,
        namespace: ra.namespace || undefined,
        name: ra.name,
        path: '',
      });
    } else if (nra) allowed = true;
    return {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: body.spec ?? {},
      status: { allowed, ...(allowed ? {} : { reason: `no rule allows user "${who.user}"` }) },
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const method = req.method ?? 'GET';
    const t = parsePath(method, url.pathname, url.searchParams);
    const rec = newRecord(req, url, t);
    res.on('finish', () => {
      rec.status = res.statusCode;
    });
    try {
      const who = admit(req, url, t, rec);
      if (!t.r) {
        if (discovery(req, res, url.pathname)) return;
        throw new HttpError(status(404, 'NotFound', 'the server could not find the requested resource'));
      }
      const r = t.r;
      const q = url.searchParams;
      const ns = r.namespaced ? t.namespace : undefined;
      if (r.namespaced && t.name && !t.namespace) {
        throw new HttpError(status(404, 'NotFound', 'the server could not find the requested resource'));
      }
      if (r.name === 'selfsubjectaccessreviews' || r.name === 'selfsubjectreviews') {
        if (method !== 'POST')
          throw new HttpError(status(405, 'MethodNotAllowed', 'only create is supported'));
        send(res, 201, reviews(r, await readBody(req), who));
        return;
      }
      const dryRun = q.getAll('dryRun').includes('All');
      if (t.subresource) {
        if (r.name !== 'pods' || t.subresource !== 'log' || method !== 'GET') {
          throw new HttpError(
            status(
              400,
              'BadRequest',
              `${t.subresource} needs a WebSocket upgrade (v5.channel.k8s.io or SPDY/3.1+portforward.k8s.io)`,
            ),
          );
        }
        const pod = objects.get(key(r, ns, t.name!));
        if (!pod) throw notFound(r, t.name!);
        logs(res, pod, q);
        return;
      }
      switch (t.verb) {
        case 'list': {
          const items = listItems(r, ns, q);
          const rvs = String(rv);
          if (wantsTable(req)) send(res, 200, table(r, items, rvs));
          else if (wantsPartial(req))
            send(res, 200, {
              kind: 'PartialObjectMetadataList',
              apiVersion: 'meta.k8s.io/v1',
              metadata: { resourceVersion: rvs },
              items: items.map(partial),
            });
          else
            send(res, 200, {
              kind: `${r.kind}List`,
              apiVersion: 'v1',
              metadata: { resourceVersion: rvs },
              items,
            });
          return;
        }
        case 'watch':
          watch(req, res, r, t, q);
          return;
        case 'get': {
          const o = objects.get(key(r, ns, t.name!));
          if (!o) throw notFound(r, t.name!);
          send(res, 200, render(req, r, o));
          return;
        }
        case 'create': {
          const body = await readBody(req);
          send(res, 201, render(req, r, createObject(r, t.namespace, body, dryRun)));
          return;
        }
        case 'update': {
          const body = await readBody(req);
          const cur = objects.get(key(r, ns, t.name!));
          if (!cur) throw notFound(r, t.name!);
          const want = body.metadata?.resourceVersion;
          if (want && want !== cur.metadata.resourceVersion) {
            throw new HttpError(
              status(
                409,
                'Conflict',
                `Operation cannot be fulfilled on ${r.name} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`,
              ),
            );
          }
          const next: Obj = { ...clone(body), kind: r.kind, apiVersion: cur.apiVersion };
          next.metadata = { ...next.metadata, ...pick(cur.metadata) };
          if (r.name === 'pods') next.status = cur.status;
          send(res, 200, render(req, r, dryRun ? next : store(r, next, 'MODIFIED')));
          return;
        }
        case 'patch': {
          const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
          const body = await readBody(req);
          const cur = objects.get(key(r, ns, t.name!));
          if (ctype === 'application/apply-patch+yaml') {
            if (!cur) {
              send(
                res,
                201,
                render(
                  req,
                  r,
                  createObject(
                    r,
                    t.namespace,
                    { ...body, metadata: { ...body.metadata, name: t.name } },
                    dryRun,
                  ),
                ),
              );
              return;
            }
          } else if (
            ctype !== 'application/merge-patch+json' &&
            ctype !== 'application/strategic-merge-patch+json'
          ) {
            throw new HttpError(
              status(
                415,
                'UnsupportedMediaType',
                `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (the fake API server has no JSON patch)`,
              ),
            );
          }
          if (!cur) throw notFound(r, t.name!);
          const next = mergePatch(cur, body) as Obj;
          next.kind = r.kind;
          next.apiVersion = cur.apiVersion;
          next.metadata = { ...next.metadata, ...pick(cur.metadata) };
          if (r.name === 'pods') next.status = cur.status;
          send(res, 200, render(req, r, dryRun ? next : store(r, next, 'MODIFIED')));
          return;
        }
        case 'delete': {
          if (dryRun) {
            const o = objects.get(key(r, ns, t.name!));
            if (!o) throw notFound(r, t.name!);
            send(res, 200, o);
            return;
          }
          send(res, 200, remove(r, ns, t.name!));
          return;
        }
        default:
          throw new HttpError(
            status(405, 'MethodNotAllowed', `${t.verb} is not supported on ${r.name} by the fake API server`),
          );
      }
    } catch (err) {
      const body =
        err instanceof HttpError
          ? err.body
          : status(500, 'InternalError', `fake API server: ${(err as Error).message}`);
      if (res.headersSent) res.destroy();
      else send(res, body.code, body);
    }
  }

  function pick(m: Obj): Obj {
    return { name: m.name, namespace: m.namespace, uid: m.uid, creationTimestamp: m.creationTimestamp };
  }

  // ---------------------------------------------------------------- upgrades (exec, attach, port-forward)

  const conns = new Set<WsConn>();
  const UPGRADE_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'SPDY/3.1+portforward.k8s.io'];

  function rejectUpgrade(socket: import('node:stream').Duplex, body: Obj): void {
    const data = JSON.stringify(body);
    const reason = body.reason ?? 'Error';
    socket.end(
      `HTTP/1.1 ${body.code} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(data)}\r\nconnection: close\r\n\r\n${data}`,
    );
  }

  function onUpgrade(req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'https://fake');
    const t = parsePath(req.method ?? 'GET', url.pathname, url.searchParams);
    const rec = newRecord(req, url, t);
    socket.on('error', () => {});
    try {
      const who = admit(req, url, t, rec);
      if (
        t.r?.name !== 'pods' ||
        !t.name ||
        !t.namespace ||
        !['exec', 'attach', 'portforward'].includes(t.subresource ?? '')
      ) {
        throw new HttpError(
          status(
            400,
            'BadRequest',
            'upgrade requests are only served for pods/exec, pods/attach and pods/portforward',
          ),
        );
      }
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        throw new HttpError(
          status(400, 'BadRequest', 'the fake API server only speaks WebSocket upgrades (no SPDY)'),
        );
      }
      const pod = objects.get(key(t.r, t.namespace, t.name));
      if (!pod) throw notFound(t.r, t.name);
      if (pod.status?.phase !== 'Running') {
        throw new HttpError(
          status(
            400,
            'BadRequest',
            `cannot ${t.subresource} into a container in a completed pod; current phase is ${pod.status?.phase}`,
          ),
        );
      }
      const offered = offeredProtocols(req);
      const protocol = UPGRADE_PROTOCOLS.find((p) => offered.includes(p));
      const want = t.subresource === 'portforward' ? 'SPDY/3.1+portforward.k8s.io' : undefined;
      if (!protocol || (want && protocol !== want) || (!want && !protocol.endsWith('.channel.k8s.io'))) {
        throw new HttpError(
          status(
            400,
            'BadRequest',
            `unsupported WebSocket subprotocol(s) ${JSON.stringify(offered)}; the fake serves ${want ?? 'v5.channel.k8s.io or v4.channel.k8s.io'}`,
          ),
        );
      }
      const ws = acceptWebSocket(req, socket, head, protocol);
      if (!ws) throw new HttpError(status(400, 'BadRequest', 'not a WebSocket upgrade'));
      rec.status = 101;
      conns.add(ws);
      ws.on('close', () => conns.delete(ws));
      if (t.subresource === 'portforward') portForward(ws, pod, who);
      else execSession(ws, pod, url.searchParams, who, t.subresource === 'attach');
    } catch (err) {
      const body = err instanceof HttpError ? err.body : status(500, 'InternalError', (err as Error).message);
      rec.status = body.code;
      rejectUpgrade(socket, body);
    }
  }

  function execSession(ws: WsConn, pod: Obj, q: URLSearchParams, who: Who, attach: boolean): void {
    const containers = (pod.spec.containers as Obj[]).map((c) => c.name as string);
    const container = q.get('container') ?? containers[0]!;
    const command = q.getAll('command');
    const tty = q.get('tty') === 'true';
    const wantStdin = q.get('stdin') === 'true';
    const v5 = ws.protocol === 'v5.channel.k8s.io';
    const rec: RecordedExec = {
      namespace: pod.metadata.namespace,
      pod: pod.metadata.name,
      command: attach ? [] : command,
      tty,
      user: who.user,
      resizes: [],
    };
    execs.push(rec);
    let resumeFn: (() => void) | undefined;
    let pauseFn: (() => void) | undefined;
    let paused = false;
    ws.on('drain', () => {
      if (paused) {
        paused = false;
        resumeFn?.();
      }
    });
    const out = (ch: number, data: Buffer) => {
      if (!ws.open) return;
      if (!ws.send(Buffer.concat([Buffer.from([ch]), data])) && !paused) {
        paused = true;
        pauseFn?.();
      }
    };
    const finish = (code: number | null, signal?: string | null) => {
      if (!ws.open) return;
      rec.exitCode = code ?? 137;
      const st =
        code === 0
          ? { metadata: {}, status: 'Success' }
          : {
              metadata: {},
              status: 'Failure',
              message: `command terminated with non-zero exit code: exit status ${code ?? signal}`,
              reason: 'NonZeroExitCode',
              details: { causes: [{ reason: 'ExitCode', message: String(code ?? 137) }] },
            };
      ws.send(Buffer.concat([Buffer.from([3]), Buffer.from(JSON.stringify(st))]));
      ws.close(1000);
    };
    const live = {
      end: () => {
        try {
          ws.terminate();
        } catch {}
      },
    };
    liveStreams.add(live);
    ws.on('close', () => liveStreams.delete(live));

    if (attach) {
      const proc = procs.get(`${pod.metadata.namespace}/${pod.metadata.name}/${container}`);
      if (!proc?.child || proc.done) {
        ws.send(
          Buffer.concat([
            Buffer.from([3]),
            Buffer.from(JSON.stringify(status(400, 'BadRequest', 'container is not running'))),
          ]),
        );
        ws.close(1000);
        return;
      }
      const f = (chunk: Buffer | null) => (chunk === null ? finish(0) : out(1, chunk));
      proc.followers.add(f);
      ws.on('message', (m: Buffer) => {
        if (m[0] === 0) proc.child?.stdin?.write(m.subarray(1));
      });
      ws.on('close', () => proc.followers.delete(f));
      return;
    }
    if (command.length === 0) {
      ws.send(
        Buffer.concat([
          Buffer.from([3]),
          Buffer.from(
            JSON.stringify(
              status(400, 'BadRequest', 'you must specify at least one command for the container'),
            ),
          ),
        ]),
      );
      ws.close(1000);
      return;
    }
    const podDir = join(podRoot, `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`);
    const env = { ...podEnv(pod), ...(tty ? { TERM: 'xterm' } : {}) };
    if (tty) {
      // The process starts once the client's first terminal size arrives (channel 4; kubectl sends
      // it right after the upgrade), or after 300 ms without one, so it sees its size from the start.
      let term: import('node-pty').IPty | undefined;
      const early: Buffer[] = [];
      let size = { cols: 80, rows: 24 };
      let started = false;
      const start = () => {
        if (started || !ws.open) return;
        started = true;
        void import('node-pty').then((pty) => {
          if (!ws.open) return;
          try {
            term = pty.spawn(command[0]!, command.slice(1), { name: 'xterm', ...size, cwd: podDir, env });
          } catch (err) {
            out(2, Buffer.from(`${(err as Error).message}\n`));
            finish(126);
            return;
          }
          const t = term;
          pauseFn = () => t.pause();
          resumeFn = () => t.resume();
          t.onData((d) => out(1, Buffer.from(d, 'utf8')));
          t.onExit(({ exitCode, signal }) => setImmediate(() => finish(signal ? 128 + signal : exitCode)));
          for (const b of early.splice(0)) t.write(b.toString('utf8'));
        });
      };
      const timer = setTimeout(start, 300);
      ws.on('message', (m: Buffer) => {
        if (m[0] === 0) {
          if (term) term.write(m.subarray(1).toString('utf8'));
          else early.push(m.subarray(1));
        } else if (m[0] === 4) {
          let z: { Width?: number; Height?: number };
          try {
            z = JSON.parse(m.subarray(1).toString('utf8'));
          } catch {
            return;
          }
          if (!(Number(z.Width) > 0 && Number(z.Height) > 0)) return;
          rec.resizes.push({ width: Number(z.Width), height: Number(z.Height) });
          size = { cols: Number(z.Width), rows: Number(z.Height) };
          if (term) term.resize(size.cols, size.rows);
          else {
            clearTimeout(timer);
            start();
          }
        }
      });
      ws.on('close', () => {
        clearTimeout(timer);
        try {
          term?.kill('SIGKILL');
        } catch {}
      });
      return;
    }
    const child = spawn(command[0]!, command.slice(1), { cwd: podDir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    pauseFn = () => {
      child.stdout.pause();
      child.stderr.pause();
    };
    resumeFn = () => {
      child.stdout.resume();
      child.stderr.resume();
    };
    child.stdout.on('data', (b: Buffer) => out(1, b));
    child.stderr.on('data', (b: Buffer) => out(2, b));
    child.stdin.on('error', () => {});
    let spawnError = false;
    child.on('error', (err) => {
      spawnError = true;
      out(2, Buffer.from(`exec: ${err.message}\n`));
      finish(126);
    });
    child.on('close', (code, signal) => {
      if (!spawnError) finish(code, signal);
    });
    if (!wantStdin) child.stdin.end();
    ws.on('message', (m: Buffer) => {
      if (m[0] === 0 && wantStdin) {
        if (!child.stdin.write(m.subarray(1))) {
          ws.pause();
          child.stdin.once('drain', () => ws.resume());
        }
      } else if (v5 && m[0] === 255 && m[1] === 0) child.stdin.end();
    });
    ws.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
  }

  function portForward(ws: WsConn, pod: Obj, who: Who): void {
    const spdy = new SpdyServerSession((bytes) => {
      if (ws.open) ws.send(bytes);
    });
    const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream; tcp?: Socket }>();
    const live = { end: () => ws.terminate() };
    liveStreams.add(live);
    ws.on('message', (m: Buffer) => spdy.push(m));
    ws.on('close', () => {
      liveStreams.delete(live);
      spdy.close();
    });
    spdy.on('error', () => ws.terminate());
    spdy.on('stream', (s: SpdyStream) => {
      const id = s.headers.requestid ?? '';
      const port = Number(s.headers.port);
      const pair = pairs.get(id) ?? {};
      pairs.set(id, pair);
      if (s.headers.streamtype === 'error') pair.error = s;
      else if (s.headers.streamtype === 'data') pair.data = s;
      else return s.reset();
      if (!pair.error || !pair.data) return;
      const { error, data } = pair;
      portForwards.push({ namespace: pod.metadata.namespace, pod: pod.metadata.name, port, user: who.user });
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        error.end(Buffer.from(`invalid port ${s.headers.port}`));
        data.end();
        return;
      }
      const tcp = connect(port, '127.0.0.1');
      pair.tcp = tcp;
      tcp.on('data', (b) => data.write(b));
      tcp.on('end', () => data.end());
      tcp.on('error', (err) => {
        error.end(
          Buffer.from(
            `error forwarding port ${port} to pod ${pod.metadata.name}, uid ${pod.metadata.uid}: dial tcp4 127.0.0.1:${port}: ${(err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'connect: connection refused' : err.message}`,
          ),
        );
      });
      tcp.on('close', () => {
        data.end();
        error.end();
        pairs.delete(id);
      });
      data.on('data', (b: Buffer) => tcp.write(b));
      data.on('end', () => tcp.end());
      data.on('reset', () => tcp.destroy());
    });
  }

  // ---------------------------------------------------------------- listen

  const server: Server = createServer(
    {
      key: serving.keyPem,
      cert: serving.certPem,
      ca: pki.ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  server.on('upgrade', onUpgrade);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;

  return {
    url,
    port,
    dir,
    ca: pki.ca,
    admin,
    adminToken,
    adminTokenFile,
    requests,
    execs,
    portForwards,
    clientCert: (user, groups = []) => pki.issue('client', user, groups, 'client'),
    kubeServiceYaml: (labels) =>
      'kube_service:\n  clusters:\n' +
      `    - name: fake\n      server: ${url}\n      ca_file: ${pki.ca.certFile}\n` +
      `      cert_file: ${admin.certFile}\n      key_file: ${admin.keyFile}\n      labels: { ${labels} }\n`,
    writeKubeconfig(path, o = {}) {
      const cert = o.token ? undefined : (o.cert ?? admin);
      const user = o.token
        ? `    token: ${o.token}\n`
        : `    client-certificate: ${cert!.certFile}\n    client-key: ${cert!.keyFile}\n`;
      writeFileSync(
        path,
        `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${url}
    certificate-authority: ${pki.ca.certFile}
users:
- name: fake-user
  user:
${user}contexts:
- name: fake
  context:
    cluster: fake
    user: fake-user
    namespace: ${o.namespace ?? 'default'}
current-context: fake
`,
        { mode: 0o600 },
      );
      return path;
    },
    create(resource, obj, namespace = 'default') {
      const r = def(resource);
      if (!r) throw new Error(`fake API server: unknown resource ${resource}`);
      return clone(createObject(r, r.namespaced ? namespace : undefined, obj));
    },
    get(resource, name, namespace = 'default') {
      const r = def(resource);
      if (!r) return undefined;
      const o = objects.get(key(r, r.namespaced ? namespace : undefined, name));
      return o ? clone(o) : undefined;
    },
    addRules(more) {
      rules.push(...more);
    },
    openStreams: () => liveStreams.size,
    async close() {
      for (const s of [...liveStreams]) s.end();
      for (const p of procs.values()) p.child?.kill('SIGKILL');
      for (const c of [...conns]) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
