/**
 * The X.509 identity codec: what a Warden user client certificate says about its holder.
 * Subject `CN=<user>` plus one `O=<role>` per role; an extension at `Oids.identity` whose
 * value is a DER UTF8String holding JSON `{ user, roles, logins, traits }`; and, after the
 * device ceremony, the three device extensions (`Oids.deviceId`, `Oids.deviceAssetTag`,
 * `Oids.deviceCredentialId`, each a DER UTF8String) — all three or none. None is critical.
 * @peculiar/x509 can't write or read these big-arc OIDs (see x509-der.ts): build the certificate
 * with it, then add these with `addCertificateExtensions`.
 * Parsing does not verify signatures or times: verify the chain first (server: CertAuthorities).
 * Who may import: the certs module; its public functions are re-exported from `@warden/api`.
 * Tested by `identity.test.ts` (with `openssl x509 -text`).
 */

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { z } from 'zod';
import { Oids } from '../constants';
import { WardenError } from '../errors';
import { type CertificateExtension, certificateDer, readCertificateExtensions } from './x509-der';

/** The three device extensions (DESIGN §4): all three or none. */
export interface DeviceIdentity {
  deviceId: string;
  assetTag: string;
  credentialId: string;
}

/** Who a certificate speaks for. */
export interface CertIdentity {
  user: string;
  roles: string[];
  logins: string[];
  traits: Record<string, string[]>;
  /** `bot` for a machine identity (`wctl bots add`); absent for people. */
  kind?: 'bot';
  /** Present only on certificates augmented by the device ceremony. */
  device?: DeviceIdentity;
  /** Present only on app certificates (`wsh app login`): the one app the certificate is for. */
  app?: AppRoute;
  /** Present only on database certificates (`wsh db login`): the one database it is for. */
  db?: DbCertRoute;
}

/**
 * What a database certificate is for: the `db` resource, and the db user and database name
 * chosen at `wsh db login` (when given they win over what the client's startup says).
 */
export interface DbCertRoute {
  db: string;
  dbUser?: string;
  dbName?: string;
}

/** What an app certificate is for: the app, the host name it was asked for, the app session. */
export interface AppRoute {
  app: string;
  publicAddr: string;
  sessionId: string;
}

const appRouteJson = z.strictObject({
  app: z.string().min(1).max(253),
  public_addr: z.string().min(1).max(253),
  session_id: z.string().min(1).max(128),
});

const DB_ROUTE_NAME = /^[^\s\p{Cc}]{1,253}$/u;
const dbRouteJson = z.strictObject({
  db: z.string().regex(DB_ROUTE_NAME),
  db_user: z.string().regex(DB_ROUTE_NAME).optional(),
  db_name: z.string().regex(DB_ROUTE_NAME).optional(),
});

const identityJson = z.strictObject({
  user: z.string().min(1),
  roles: z.array(z.string().min(1)),
  logins: z.array(z.string().min(1)),
  traits: z.record(z.string(), z.array(z.string())),
  kind: z.literal('bot').optional(),
});

const deviceOids = [
  ['deviceId', Oids.deviceId],
  ['assetTag', Oids.deviceAssetTag],
  ['credentialId', Oids.deviceCredentialId],
] as const satisfies readonly (readonly [keyof DeviceIdentity, string])[];

function bad(reason: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `certificate identity: ${reason}`);
}

/**
 * The DER value of the identity extension (`Oids.identity`): a UTF8String of the JSON identity
 * (device fields are separate extensions).
 *
 * @example
 *   encodeIdentityExtension({ user: 'alice', roles: ['dev'], logins: ['alice'], traits: {} }) // 0c 4c 7b 22 75 …
 */
export function encodeIdentityExtension(identity: CertIdentity): Uint8Array {
  const input = {
    user: identity.user,
    roles: identity.roles,
    logins: identity.logins,
    traits: identity.traits,
    ...(identity.kind === 'bot' ? { kind: 'bot' } : {}),
  };
  // The same identity is certified again and again (each login, each device authentication):
  // an input checked before, byte for byte the same JSON, is not checked again.
  const key = JSON.stringify(input);
  const known = encodedIdentities.get(key);
  if (known) return Uint8Array.from(known);
  const encoded = encodeCheckedIdentity(input);
  if (encodedIdentities.size >= ENCODED_IDENTITIES_MAX)
    encodedIdentities.delete(encodedIdentities.keys().next().value!);
  encodedIdentities.set(key, encoded);
  return Uint8Array.from(encoded);
}

/** Identity extensions already checked and encoded, by their input's JSON (oldest dropped first). */
const encodedIdentities = new Map<string, Uint8Array>();
const ENCODED_IDENTITIES_MAX = 1024;

function encodeCheckedIdentity(input: Record<string, unknown>): Uint8Array {
  const checked = identityJson.safeParse(input);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `certificate identity: ${issue ? `${issue.path.join('.') || 'identity'}: ${issue.message}` : 'invalid'}`,
    );
  }
  const { user, roles, logins, traits, kind } = checked.data;
  return derUtf8String(JSON.stringify({ user, roles, logins, traits, ...(kind ? { kind } : {}) }));
}

/** The three device extensions for `device` (throws if a field is empty). */
export function encodeDeviceExtensions(device: DeviceIdentity): CertificateExtension[] {
  return deviceOids.map(([field, oid]) => {
    const v = device[field];
    if (typeof v !== 'string' || v === '') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `device ${field} must be a non-empty string`);
    }
    return { oid, critical: false, value: derUtf8String(v) };
  });
}

/** The app route extension (`Oids.appRoute`): a UTF8String of `{ app, public_addr, session_id }`. */
export function encodeAppRouteExtension(route: AppRoute): CertificateExtension {
  const checked = appRouteJson.safeParse({
    app: route.app,
    public_addr: route.publicAddr,
    session_id: route.sessionId,
  });
  if (!checked.success)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'certificate identity: invalid app route');
  return { oid: Oids.appRoute, critical: false, value: derUtf8String(JSON.stringify(checked.data)) };
}

/** The database route extension (`Oids.dbRoute`): a UTF8String of `{ db, db_user?, db_name? }`. */
export function encodeDbRouteExtension(route: DbCertRoute): CertificateExtension {
  const checked = dbRouteJson.safeParse({
    db: route.db,
    ...(route.dbUser !== undefined ? { db_user: route.dbUser } : {}),
    ...(route.dbName !== undefined ? { db_name: route.dbName } : {}),
  });
  if (!checked.success)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'certificate identity: invalid database route');
  return { oid: Oids.dbRoute, critical: false, value: derUtf8String(JSON.stringify(checked.data)) };
}

/**
 * Every Warden extension a certificate for `identity` carries (identity, device if any, app or
 * database route if any: never both).
 */
export function identityExtensions(identity: CertIdentity): CertificateExtension[] {
  if (identity.app && identity.db)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'certificate identity: one route per certificate');
  const out: CertificateExtension[] = [
    { oid: Oids.identity, critical: false, value: encodeIdentityExtension(identity) },
  ];
  if (identity.device) out.push(...encodeDeviceExtensions(identity.device));
  if (identity.app) out.push(encodeAppRouteExtension(identity.app));
  if (identity.db) out.push(encodeDbRouteExtension(identity.db));
  return out;
}

/** The subject for `identity` in @peculiar/x509's JSON name form: CN=user, then O=role per role. */
export function identitySubject(identity: Pick<CertIdentity, 'user' | 'roles'>): Record<string, string[]>[] {
  return [{ CN: [identity.user] }, ...identity.roles.map((role) => ({ O: [role] }))];
}

/**
 * Reads the identity from a Warden user certificate (PEM or DER). Fails closed: a missing or
 * malformed identity extension, a subject that disagrees with it, a repeated extension, or a
 * partial set of device extensions is a WardenError('WARDEN_ERR_BAD_CERTIFICATE').
 * Does NOT verify the signature or validity: do that first.
 *
 * @example
 *   const { user, roles, device } = parseIdentityFromCertificate(tlsCertPem);
 */
export function parseIdentityFromCertificate(cert: string | Uint8Array): CertIdentity {
  try {
    const der = certificateDer(cert);
    const extensions = readCertificateExtensions(der);
    return readIdentity(new x509.X509Certificate(new Uint8Array(der)), extensions);
  } catch (e) {
    // The ASN.1 library throws plain errors on malformed input; all of them mean "bad certificate".
    if (e instanceof WardenError) throw e;
    throw new WardenError('WARDEN_ERR_BAD_CERTIFICATE', 'malformed certificate: not X.509');
  }
}

function readIdentity(parsed: x509.X509Certificate, extensions: CertificateExtension[]): CertIdentity {
  // Extensions come from our own DER reader: asn1js mangles Warden's big-arc OIDs (x509-der.ts).
  const byOid = new Map<string, CertificateExtension>();
  for (const e of extensions) {
    if (byOid.has(e.oid)) throw bad(`extension ${e.oid} appears twice`);
    byOid.set(e.oid, e);
  }
  const ext = (oid: string): string | undefined => {
    const e = byOid.get(oid);
    if (e?.critical) throw bad(`extension ${oid} must not be critical`);
    return e ? readDerUtf8String(e.value, oid) : undefined;
  };

  const raw = ext(Oids.identity);
  if (raw === undefined) throw bad('the certificate has no Warden identity extension');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw bad('identity extension is not JSON');
  }
  const result = identityJson.safeParse(json);
  if (!result.success) throw bad('identity extension has the wrong shape');
  const { kind, ...fields } = result.data;
  const identity: CertIdentity = kind ? { ...fields, kind } : fields;

  const cns = parsed.subjectName.getField('CN');
  const orgs = parsed.subjectName.getField('O');
  if (cns.length !== 1 || cns[0] !== identity.user) throw bad('subject CN does not match the identity');
  if (!sameSet(orgs, identity.roles)) throw bad('subject O (roles) does not match the identity');

  const device = deviceOids.map(([field, oid]) => [field, ext(oid)] as const);
  const present = device.filter(([, v]) => v !== undefined);
  if (present.length === deviceOids.length) {
    const d = Object.fromEntries(present) as unknown as DeviceIdentity;
    if (!d.deviceId || !d.assetTag || !d.credentialId) throw bad('empty device extension');
    identity.device = d;
  } else if (present.length > 0) {
    throw bad('device extensions must be all three or none');
  }
  const route = ext(Oids.appRoute);
  if (route !== undefined) {
    let parsedRoute: z.infer<typeof appRouteJson>;
    try {
      parsedRoute = appRouteJson.parse(JSON.parse(route));
    } catch {
      throw bad('app route extension has the wrong shape');
    }
    identity.app = {
      app: parsedRoute.app,
      publicAddr: parsedRoute.public_addr,
      sessionId: parsedRoute.session_id,
    };
  }
  const dbRoute = ext(Oids.dbRoute);
  if (dbRoute !== undefined) {
    if (identity.app) throw bad('a certificate has one route: app or database');
    let parsedDb: z.infer<typeof dbRouteJson>;
    try {
      parsedDb = dbRouteJson.parse(JSON.parse(dbRoute));
    } catch {
      throw bad('database route extension has the wrong shape');
    }
    identity.db = {
      db: parsedDb.db,
      ...(parsedDb.db_user !== undefined ? { dbUser: parsedDb.db_user } : {}),
      ...(parsedDb.db_name !== undefined ? { dbName: parsedDb.db_name } : {}),
    };
  }
  return identity;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, i) => v === y[i]);
}

const UTF8_STRING_TAG = 0x0c;
/** DER UTF8String (tag 12, definite length). */
export function derUtf8String(s: string): Uint8Array {
  const body = Buffer.from(s, 'utf8');
  const len = body.length;
  let header: number[];
  if (len < 0x80) header = [UTF8_STRING_TAG, len];
  else {
    const lenBytes: number[] = [];
    for (let n = len; n > 0; n = Math.floor(n / 256)) lenBytes.unshift(n & 0xff);
    header = [UTF8_STRING_TAG, 0x80 | lenBytes.length, ...lenBytes];
  }
  return Buffer.concat([Buffer.from(header), body]);
}

/** Reads a DER UTF8String that fills `der` exactly; strict (minimal length, valid UTF-8). */
export function readDerUtf8String(der: Uint8Array, what: string): string {
  if (der.length < 2 || der[0] !== UTF8_STRING_TAG) throw bad(`extension ${what} is not a UTF8String`);
  let len = der[1] as number;
  let offset = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || der.length < 2 + n) throw bad(`extension ${what} has a bad length`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[2 + i] as number);
    if (len < 0x80 || der[2] === 0) throw bad(`extension ${what} has a non-minimal length`);
    offset = 2 + n;
  }
  if (offset + len !== der.length) throw bad(`extension ${what} has a bad length`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(der.subarray(offset));
  } catch {
    throw bad(`extension ${what} is not valid UTF-8`);
  }
}
