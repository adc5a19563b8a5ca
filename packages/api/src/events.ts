/**
 * The audit event catalogue: every kind of audit event Warden records, with a stable code
 * (`W<4 digits><I|W>`: I for success, W for failure), a one-line summary and the schema of its
 * type-specific fields. Codes are never reused or renamed; a retired code goes to
 * `retiredAuditCodes`. Field names are snake_case; no field may be named like a secret
 * (`isSecretFieldName`), and the audit store drops such fields wherever they appear.
 * Who may import: everyone (the server emits events, `wctl audit search` reads them).
 * Tested by `events.test.ts` (codes unique and well formed, schemas, secret names).
 *
 * @example
 *   const input: AuditEventInput = { type: 'user.login', success: false, user: 'alice',
 *     addr: '10.0.0.7', error: 'invalid credentials', method: 'local' };
 */
import { z } from 'zod';

/** The device a trusted-device user acted from, or the device an event is about. */
export const AuditDeviceSchema = z.object({
  id: z.string(),
  os_type: z.string().optional(),
  asset_tag: z.string().optional(),
  credential_id: z.string().optional(),
});
export type AuditDevice = z.infer<typeof AuditDeviceSchema>;

/** A resource an event is about (a node, a database, an app, a kube cluster, a role…). */
export const AuditResourceSchema = z.object({
  kind: z.string(),
  /** The resource's name; for a node, its ID (a UUID for Warden nodes). */
  name: z.string(),
  /** A node's host name (nodes carry both: `name` is the ID, `hostname` what people type). */
  hostname: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
export type AuditResource = z.infer<typeof AuditResourceSchema>;

/** Fields every event may carry besides those the store fills in (id, code, time). */
export const auditCommonFields = {
  /** Defaults to true, or to false for types that only have a failure code. */
  success: z.boolean().optional(),
  /** The user who acted (or tried to). */
  user: z.string().optional(),
  /** The client's network address. */
  addr: z.string().optional(),
  /** Why it failed, for failures: a user-facing message, never a secret. */
  error: z.string().optional(),
  /** The trusted device the user acted from (DESIGN §5). */
  device: AuditDeviceSchema.optional(),
  /** `bot` when the user is a machine identity (`wctl bots add`); absent for people. */
  user_kind: z.enum(['human', 'bot']).optional(),
  /** `bot`: device trust was `required-for-humans` and the bot exemption let a bot in without a device. */
  device_exemption: z.enum(['bot']).optional(),
};

const str = z.string().optional();
const strs = z.array(z.string()).optional();
const protocol = z.enum(['ssh', 'db', 'app', 'kube', 'api']);

/** What a resource's creation or update says about it. */
const resourceWritten = {
  kind: z.string(),
  name: z.string(),
  /** Where a node, db or app resource points Warden (its spec.addr or spec.uri). */
  target_addr: str,
};

/** Who asked for access, as what (both outcomes of the access checker). */
const accessAsked = {
  login: str,
  db_user: str,
  db_name: str,
  /** The roles of the identity that asked. */
  roles: strs,
  /** Roles of the identity that no longer exist: they granted nothing. */
  missing_roles: strs,
};

/** The session an SSH or database session event belongs to. */
const sessionOf = {
  protocol,
  session_id: z.string(),
  resource: AuditResourceSchema,
  login: str,
  roles: strs,
};

function entry<
  const S extends string | undefined,
  const F extends string | undefined,
  T extends z.ZodRawShape,
>(code: S, failureCode: F, summary: string, fields: T) {
  return { code, failureCode, summary, fields: z.object(fields) };
}

/**
 * Every audit event type. `code` is used when `success` is true, `failureCode` when false; a
 * type without one of them cannot have that outcome.
 */
export const auditEventCatalogue = {
  'user.login': entry('W1000I', 'W1000W', 'A user logged in, or a login attempt failed', {
    method: str,
    mfa: str,
  }),
  'user.create': entry('W1001I', undefined, 'A user was created', { name: z.string(), roles: strs }),
  'user.update': entry('W1002I', undefined, 'A user was updated', { name: z.string(), roles: strs }),
  'user.delete': entry('W1003I', undefined, 'A user was deleted', { name: z.string() }),
  'user.signup': entry('W1004I', 'W1004W', 'A user completed signup (password and second factor)', {
    name: str,
    mfa: str,
  }),
  'user.password_reset': entry('W1005I', undefined, "A user's invite was reissued (password reset)", {
    name: z.string(),
    expires: str,
  }),
  'web.session.end': entry('W1100I', undefined, 'A Web UI session ended (sign-out, timeout or lock)', {
    /** `sign-out`, `idle timeout`, `expired`, `locked: …`, `user deleted`. */
    reason: z.string(),
    /** A short, non-secret handle of the session (a prefix of its stored key). */
    web_session: str,
  }),
  'bot.create': entry('W1200I', undefined, 'A bot (machine identity) was created, with a join token', {
    name: z.string(),
    roles: strs,
    expires: str,
  }),
  'bot.delete': entry('W1201I', undefined, 'A bot was deleted (its join tokens with it)', {
    name: z.string(),
  }),
  'bot.join': entry('W1202I', 'W1202W', 'A bot joined with its one-time join token, or a join failed', {
    expires: str,
  }),
  'bot.renew': entry(
    'W1203I',
    'W1203W',
    'A bot renewed its certificates with its current ones, or was refused',
    {
      expires: str,
    },
  ),
  'token.removed': entry('W1204I', undefined, 'An open one-time token was removed (`wctl tokens rm`)', {
    /** The ID `wctl tokens ls` shows (a prefix of the stored hash; never the token). */
    handle: z.string(),
    /** `bot` (join), `invite` or `enroll`. */
    purpose: z.string(),
    /** The bot, user or device it was for. */
    subject: str,
  }),
  'cert.create': entry('W2000I', undefined, 'Certificates were issued to a user', {
    cert_type: z.enum(['user', 'host', 'db', 'openssh', 'app']),
    /** The app an app certificate is for. */
    app: str,
    /** The database a database certificate (`wsh db login`) is for. */
    db: str,
    roles: strs,
    logins: strs,
    expires: str,
    /** True when the certificates carry the device trust extensions. */
    device_extensions: z.boolean().optional(),
  }),
  'role.created': entry('W3000I', undefined, 'A role was created', { name: z.string() }),
  'role.updated': entry('W3001I', undefined, 'A role was updated', { name: z.string() }),
  'role.deleted': entry('W3002I', undefined, 'A role was deleted', { name: z.string() }),
  'cluster_auth_preference.updated': entry('W3100I', undefined, 'The cluster auth preference was updated', {
    second_factor: str,
    device_trust_mode: str,
  }),
  'lock.created': entry('W3200I', undefined, 'A lock was created', {
    name: z.string(),
    target: z.record(z.string(), z.string()).optional(),
    message: str,
    expires: str,
  }),
  'lock.deleted': entry('W3201I', undefined, 'A lock was deleted', { name: z.string() }),
  'resource.create': entry('W3300I', undefined, 'A resource was created', resourceWritten),
  'resource.update': entry('W3301I', undefined, 'A resource was updated', resourceWritten),
  'resource.delete': entry('W3302I', undefined, 'A resource was deleted', {
    kind: z.string(),
    name: z.string(),
  }),
  'access.allowed': entry('W4000I', undefined, 'The access checker allowed access to a resource', {
    protocol,
    resource: AuditResourceSchema,
    ...accessAsked,
  }),
  'access.denied': entry(undefined, 'W4001W', 'The access checker denied access to a resource', {
    protocol,
    resource: AuditResourceSchema.optional(),
    ...accessAsked,
  }),
  'device.create': entry('W5000I', undefined, 'A device was added to the inventory', {
    device_id: z.string(),
    asset_tag: str,
    os_type: str,
  }),
  'device.delete': entry('W5001I', undefined, 'A device was removed from the inventory', {
    device_id: z.string(),
    asset_tag: str,
  }),
  'device.token.create': entry('W5002I', undefined, 'A device enrollment token was created', {
    device_id: z.string(),
    asset_tag: str,
    expires: str,
  }),
  'device.enroll': entry('W5003I', 'W5003W', 'A device enrolled (or failed to) with its TPM', {
    device_id: str,
    asset_tag: str,
    os_type: str,
    credential_id: str,
    attestation_type: str,
    /** How far the EK certificate was verified (device credential `ek_cert_verified`). */
    ek_cert_verified: str,
    /** True when enrolled without a token at the user's login (`device_trust.auto_enroll`). */
    auto: z.boolean().optional(),
  }),
  'device.authenticate': entry('W5004I', 'W5004W', 'A device authenticated (or failed to) at login', {
    device_id: str,
    credential_id: str,
  }),
  'device.web_authenticate': entry(
    'W5100I',
    'W5100W',
    'A browser session was device-trusted by `wsh device web-helper` (or refused)',
    {
      device_id: str,
      credential_id: str,
      challenge_id: str,
      web_session: str,
    },
  ),
  'device.update': entry('W5005I', undefined, 'A device in the inventory was changed (e.g. unenrolled)', {
    device_id: z.string(),
    asset_tag: str,
    enroll_status: str,
    /** True when the change removed the device's credential. */
    unenrolled: z.boolean().optional(),
  }),
  'device.token.spent': entry('W5006I', 'W5006W', 'A device enrollment token was used (or refused)', {
    device_id: str,
    asset_tag: str,
  }),
  'session.start': entry('W6000I', 'W6000W', 'A session to a resource started (or failed to start)', {
    ...sessionOf,
    /** The database user and database (databases). */
    db_user: str,
    db_name: str,
    /** The node's host name (SSH). */
    node: str,
    /** `shell`, `exec`, `subsystem` or `direct-tcpip` (SSH). */
    session_type: str,
    /** The command of an exec session, or the subsystem's name. */
    command: str,
    /** For port forwarding: where the node connected to (`host:port`). */
    forward_addr: str,
  }),
  'session.end': entry('W6001I', undefined, 'A session to a resource ended', {
    ...sessionOf,
    node: str,
    session_type: str,
    command: str,
    forward_addr: str,
    db_user: str,
    db_name: str,
    /** The exit status of the session's process, when it exited. */
    exit_code: z.number().int().optional(),
    /** The signal that ended the session's process (`TERM`, `KILL`…), when one did. */
    exit_signal: str,
    duration_ms: z.number().nonnegative().optional(),
    /** Why the session was ended from the server side (a lock in force, shutdown…). */
    terminated_by: str,
  }),
  'session.exec': entry('W6002I', undefined, 'A command was run in a session', {
    ...sessionOf,
    node: str,
    command: z.string(),
  }),
  'db.query': entry('W6100I', undefined, 'A query was sent to a database in a session', {
    protocol,
    session_id: z.string(),
    resource: AuditResourceSchema,
    db_user: str,
    db_name: str,
    /** The statement as the client sent it (PostgreSQL Query or Parse, MySQL COM_QUERY…). */
    query: z.string(),
    /** Bound parameters of a prepared statement, as text. */
    parameters: z.array(z.string().nullable()).optional(),
    /** Name of the prepared statement or portal, when there is one. */
    statement: str,
  }),
  'app.session.start': entry('W6200I', 'W6200W', 'An app session started (or was refused)', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    roles: strs,
    /** The host name the app was reached at. */
    public_addr: str,
    /** What the session was created from: `cert` (an app certificate) or `web` (a web session). */
    via: z.enum(['cert', 'web']).optional(),
  }),
  'app.session.end': entry('W6201I', undefined, 'An app session ended', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    roles: strs,
    /** Requests served in the session. */
    requests: z.number().int().nonnegative().optional(),
    duration_ms: z.number().nonnegative().optional(),
    /** Why it ended from the server side (a lock in force, expiry, shutdown…); absent when idle. */
    terminated_by: str,
  }),
  'app.request': entry('W6202I', undefined, 'A request in an app session (apps with audit_requests)', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    method: z.string(),
    /** The path without its query string (which may carry secrets). */
    path: z.string(),
    status: z.number().int(),
    /** Body bytes received from the client and sent back to it (never the bodies themselves). */
    request_bytes: z.number().int().nonnegative().optional(),
    response_bytes: z.number().int().nonnegative().optional(),
    duration_ms: z.number().nonnegative().optional(),
  }),
  'kube.request': entry(
    'W6300I',
    'W6300W',
    'A Kubernetes API request through kube_service (or its refusal)',
    {
      resource: AuditResourceSchema,
      /** The Kubernetes verb (`get`, `list`, `watch`, `create`, `patch`, `delete`…). */
      verb: z.string(),
      /** The API resource (`pods`, `configmaps`…) with its subresource (`pods/log`). */
      kube_resource: str,
      namespace: str,
      /** The object's name, when the request names one. */
      name: str,
      /** The request path without its query string. */
      path: z.string(),
      /** The HTTP status the client got. */
      status: z.number().int().optional(),
      kube_users: strs,
      kube_groups: strs,
      roles: strs,
      duration_ms: z.number().nonnegative().optional(),
    },
  ),
  'kube.exec.start': entry('W6301I', 'W6301W', 'A kubectl exec or attach session started (or was refused)', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    namespace: z.string(),
    pod: z.string(),
    container: str,
    /** The command (exec), empty for attach. */
    command: str,
    tty: z.boolean().optional(),
    kube_users: strs,
    kube_groups: strs,
    roles: strs,
  }),
  'kube.exec.end': entry('W6302I', undefined, 'A kubectl exec or attach session ended', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    namespace: z.string(),
    pod: z.string(),
    command: str,
    exit_code: z.number().int().optional(),
    duration_ms: z.number().nonnegative().optional(),
    /** Why it was ended from the server side (a lock in force, expiry, shutdown…). */
    terminated_by: str,
  }),
  'kube.portforward.start': entry(
    'W6303I',
    'W6303W',
    'A kubectl port-forward session started (or was refused)',
    {
      session_id: z.string(),
      resource: AuditResourceSchema,
      namespace: z.string(),
      pod: z.string(),
      /** The pod ports asked for. */
      ports: strs,
      kube_users: strs,
      kube_groups: strs,
      roles: strs,
    },
  ),
  'kube.portforward.end': entry('W6304I', undefined, 'A kubectl port-forward session ended', {
    session_id: z.string(),
    resource: AuditResourceSchema,
    namespace: z.string(),
    pod: z.string(),
    ports: strs,
    duration_ms: z.number().nonnegative().optional(),
    terminated_by: str,
  }),
} as const;

export type AuditEventType = keyof typeof auditEventCatalogue;

/** Codes that were used once and must never be given to another event. */
export const retiredAuditCodes: readonly string[] = [];

type Catalogue = typeof auditEventCatalogue;
type CodesOf<T extends AuditEventType> = Exclude<
  Catalogue[T]['code'] | Catalogue[T]['failureCode'],
  undefined
>;
export type AuditCode = { [T in AuditEventType]: CodesOf<T> }[AuditEventType];

type CommonInput = z.input<z.ZodObject<typeof auditCommonFields>>;

/** What an emitter passes to `AuditLog.emit`: common fields plus the type's own fields. */
export type AuditEventInput = {
  [T in AuditEventType]: { type: T } & CommonInput & z.input<Catalogue[T]['fields']>;
}[AuditEventType];

/** A stored event as search returns it: the common envelope plus type-specific fields. */
export const AuditEventSchema = z.looseObject({
  /** Unique ID (UUID) assigned by the store. */
  id: z.string(),
  code: z.string(),
  type: z.string(),
  /** RFC 3339 UTC time with milliseconds, from the store's clock. */
  time: z.string(),
  success: z.boolean(),
  user: z.string().optional(),
  addr: z.string().optional(),
  error: z.string().optional(),
  device: AuditDeviceSchema.optional(),
  /** Paths of fields the store removed because they were named like secrets. */
  redacted: z.array(z.string()).optional(),
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

/** One row per event type, for docs and tests. */
export interface AuditEventTypeInfo {
  type: AuditEventType;
  code: string | undefined;
  failureCode: string | undefined;
  summary: string;
  fields: string[];
}

export const auditEventTypes: readonly AuditEventTypeInfo[] = Object.entries(auditEventCatalogue).map(
  ([type, e]) => ({
    type: type as AuditEventType,
    code: e.code,
    failureCode: e.failureCode,
    summary: e.summary,
    fields: Object.keys(e.fields.shape),
  }),
);

/** True when `type` names an entry of the catalogue. */
export function isAuditEventType(type: unknown): type is AuditEventType {
  return typeof type === 'string' && Object.hasOwn(auditEventCatalogue, type);
}

/** The code for an outcome of a type, or undefined when that type cannot have that outcome. */
export function auditCode(type: AuditEventType, success: boolean): AuditCode | undefined {
  const e = auditEventCatalogue[type];
  return (success ? e.code : e.failureCode) as AuditCode | undefined;
}

const SECRET_WORDS = new Set(['password', 'passwd', 'passphrase', 'secret', 'token', 'otp', 'totp', 'hotp']);
const SECRET_PAIRS = [
  ['private', 'key'],
  ['api', 'key'],
  ['session', 'key'],
];

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/**
 * True when a field name looks like it holds a secret: one of its words (split at `_`, `-`,
 * `.` and camelCase) is password, passwd, passphrase, secret, token, otp, totp or hotp, or it
 * contains private+key, api+key or session+key, or it is written as one word such as
 * `privatekey`. Such fields never reach the audit log.
 *
 * @example
 *   isSecretFieldName('private_key'); // true
 *   isSecretFieldName('tokenName');   // true
 *   isSecretFieldName('credential_id'); // false
 */
export function isSecretFieldName(name: string): boolean {
  const w = words(name);
  if (w.some((x) => SECRET_WORDS.has(x))) return true;
  for (const [a, b] of SECRET_PAIRS) {
    if (w.includes(`${a}${b}`)) return true;
    for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) return true;
  }
  return false;
}
