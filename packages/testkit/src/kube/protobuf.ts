/**
 * Just enough of Kubernetes' protobuf encoding for the fake API server (a test double): kubectl's
 * typed clients POST protobuf bodies (`application/vnd.kubernetes.protobuf`) for
 * SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectReview and the `kubectl create
 * configmap|secret|namespace` generators. This decodes those into the JSON shape; answers stay
 * JSON (the clients accept it). The envelope is the magic `k8s\0` and a `runtime.Unknown`
 * (1 typeMeta {1 apiVersion, 2 kind}, 2 raw). Field numbers are those of the generated.proto files.
 */
// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects of any kind, as JSON
type Obj = Record<string, any>;

interface Field {
  n: number;
  wire: number;
  v: bigint | Buffer;
}

function fields(b: Buffer): Field[] {
  const out: Field[] = [];
  let off = 0;
  const varint = (): bigint => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (off >= b.length) throw new Error('truncated varint');
      const c = b[off++]!;
      x |= BigInt(c & 0x7f) << shift;
      if ((c & 0x80) === 0) return x;
      shift += 7n;
    }
  };
  while (off < b.length) {
    const tag = Number(varint());
    const n = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ n, wire, v: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      if (off + len > b.length) throw new Error('truncated field');
      out.push({ n, wire, v: b.subarray(off, off + len) });
      off += len;
    } else if (wire === 1) off += 8;
    else if (wire === 5) off += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field) => (f.v as Buffer).toString('utf8');

function mapEntry(f: Field, asBase64: boolean): [string, string] {
  let k = '';
  let v = '';
  for (const e of fields(f.v as Buffer)) {
    if (e.n === 1) k = str(e);
    if (e.n === 2) v = asBase64 ? (e.v as Buffer).toString('base64') : str(e);
  }
  return [k, v];
}

function objectMeta(b: Buffer): Obj {
  const m: Obj = {};
  for (const f of fields(b)) {
    if (f.n === 1) m.name = str(f);
    else if (f.n === 2) m.generateName = str(f);
    else if (f.n === 3) m.namespace = str(f);
    else if (f.n === 11) {
      const [k, v] = mapEntry(f, false);
      m.labels = { ...(m.labels ?? {}), [k]: v };
    } else if (f.n === 12) {
      const [k, v] = mapEntry(f, false);
      m.annotations = { ...(m.annotations ?? {}), [k]: v };
    }
  }
  return m;
}

function resourceAttributes(b: Buffer): Obj {
  const names = ['', 'namespace', 'verb', 'group', 'version', 'resource', 'subresource', 'name'];
  const o: Obj = {};
  for (const f of fields(b)) if (f.n < names.length && f.wire === 2) o[names[f.n]!] = str(f);
  return o;
}

/** Decodes a protobuf request body of the kinds above; throws for anything else. */
export function decodeKubeProtobuf(body: Buffer): Obj {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0')
    throw new Error('missing k8s protobuf magic');
  let kind = '';
  let apiVersion = '';
  let raw: Buffer = Buffer.alloc(0);
  for (const f of fields(body.subarray(4))) {
    if (f.n === 1) {
      for (const t of fields(f.v as Buffer)) {
        if (t.n === 1) apiVersion = str(t);
        if (t.n === 2) kind = str(t);
      }
    } else if (f.n === 2) raw = f.v as Buffer;
  }
  const top = fields(raw);
  const out: Obj = { kind, apiVersion };
  const meta = top.find((f) => f.n === 1);
  out.metadata = meta ? objectMeta(meta.v as Buffer) : {};
  switch (kind) {
    case 'SelfSubjectAccessReview': {
      const spec: Obj = {};
      const s = top.find((f) => f.n === 2);
      for (const f of s ? fields(s.v as Buffer) : []) {
        if (f.n === 1) spec.resourceAttributes = resourceAttributes(f.v as Buffer);
        if (f.n === 2) {
          const nra: Obj = {};
          for (const g of fields(f.v as Buffer)) {
            if (g.n === 1) nra.path = str(g);
            if (g.n === 2) nra.verb = str(g);
          }
          spec.nonResourceAttributes = nra;
        }
      }
      out.spec = spec;
      return out;
    }
    case 'SelfSubjectReview':
    case 'Namespace':
      return out;
    case 'ConfigMap':
      for (const f of top) {
        if (f.n === 2) {
          const [k, v] = mapEntry(f, false);
          out.data = { ...(out.data ?? {}), [k]: v };
        } else if (f.n === 3) {
          const [k, v] = mapEntry(f, true);
          out.binaryData = { ...(out.binaryData ?? {}), [k]: v };
        } else if (f.n === 4) out.immutable = f.v === 1n;
      }
      return out;
    case 'Secret':
      for (const f of top) {
        if (f.n === 2) {
          const [k, v] = mapEntry(f, true);
          out.data = { ...(out.data ?? {}), [k]: v };
        } else if (f.n === 3) out.type = str(f);
        else if (f.n === 4) {
          const [k, v] = mapEntry(f, false);
          out.stringData = { ...(out.stringData ?? {}), [k]: v };
        } else if (f.n === 5) out.immutable = f.v === 1n;
      }
      return out;
    default:
      throw new Error(`the fake API server cannot decode protobuf ${kind || 'objects'}; send JSON`);
  }
}
