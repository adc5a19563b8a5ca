/**
 * What a Kubernetes API request asks for, from its method, path and query, the way the API
 * server's request-info resolver reads it: verb (`get`/`list`/`watch`/`create`/`update`/`patch`/
 * `delete`/`deletecollection`; `exec` and `portforward` for those pod subresources), API group,
 * resource, subresource, namespace and name; and whether the response is a long-lived stream
 * (watch, `logs -f`). Paths outside `/api` and `/apis` (discovery, `/version`, `/openapi`) have
 * no resource. Internal to `srv/kube`; tested by `request-info.test.ts`.
 */
import type { KubeAccessRequest } from '../../access';

export interface KubeRequestInfo extends KubeAccessRequest {
  /** A watch or a followed log: a stream the session monitor must be able to end. */
  streaming: boolean;
}

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function exactNameSelector(selector: string | null): string | undefined {
  if (!selector) return undefined;
  for (const term of selector.split(',')) {
    const m = /^metadata\.name(==?)(.+)$/.exec(term.trim());
    if (m && /^[^/%]+$/.test(m[2]!) && m[2] !== '.' && m[2] !== '..') return m[2];
  }
  return undefined;
}

export function kubeRequestInfo(method: string, pathname: string, query: URLSearchParams): KubeRequestInfo {
  let seg: string[];
  try {
    seg = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    seg = [];
  }
  const m = method.toUpperCase();
  const plain: KubeRequestInfo = {
    verb: m === 'GET' || m === 'HEAD' ? 'get' : m.toLowerCase(),
    streaming: false,
  };
  let rest: string[];
  let group: string;
  if (seg[0] === 'api' && seg.length >= 2) {
    group = '';
    rest = seg.slice(2);
  } else if (seg[0] === 'apis' && seg.length >= 3) {
    group = seg[1]!;
    rest = seg.slice(3);
  } else return plain;
  if (rest.length === 0) return plain; // group-version discovery
  let watch = query.get('watch') === 'true' || query.get('watch') === '1';
  if (rest[0] === 'watch') {
    // legacy /api/v1/watch/namespaces/…
    watch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    // `/namespaces/<ns>/<resource>…`; but `/namespaces/<ns>` and its own subresources
    // (`/namespaces/<ns>/status`, `/finalize`) are the namespace object itself.
    namespace = rest[1];
    if (rest.length >= 3 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
  }
  const resource = rest[0]!;
  let name = rest[1];
  const subresource = rest[2];
  // A list or watch of one object by `fieldSelector=metadata.name=<name>` (`kubectl get pod web -w`)
  // names it, as the API server reads it.
  if (name === undefined && (m === 'GET' || m === 'HEAD'))
    name = exactNameSelector(query.get('fieldSelector'));
  let verb: string;
  if (subresource === 'exec' || subresource === 'attach') verb = 'exec';
  else if (subresource === 'portforward') verb = 'portforward';
  else if (m === 'GET' || m === 'HEAD') verb = watch ? 'watch' : rest[1] !== undefined ? 'get' : 'list';
  else if (m === 'POST') verb = 'create';
  else if (m === 'PUT') verb = 'update';
  else if (m === 'PATCH') verb = 'patch';
  else if (m === 'DELETE') verb = rest[1] !== undefined ? 'delete' : 'deletecollection';
  else verb = m.toLowerCase();
  const follow = subresource === 'log' && query.get('follow') === 'true';
  return {
    verb,
    group,
    resource,
    ...(subresource !== undefined ? { subresource } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    streaming: watch || follow,
  };
}
