/**
 * The database choices `wsh db login NAME --db-user --db-name` remembers, per profile:
 * `<profile dir>/dbs.json` = `{ "<db>": { "db_user": "…", "db_name": "…" } }`. They are the
 * defaults of `wsh db connect`, `wsh proxy db` and `wsh db config`; `wsh db logout` forgets
 * them, and `wsh logout` (which removes the profile dir) too. With them, the database
 * certificate of the login, for native clients straight at the proxy:
 *
 *   <profile dir>/dbs/<name>.crt    the database certificate (PEM); its key is the profile's key.pem
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type rpc, WardenError } from '@warden/api';
import type { LoadedProfile } from '../profile';

export interface DbLogin {
  db_user?: string;
  db_name?: string;
  /** Protocol of the database when it was chosen (for `wsh db config`). */
  protocol?: string;
  /** The database certificate's expiry (ISO), when one was issued (`dbCertPath`). */
  expires?: string;
  /** Where native clients connect with the certificate. */
  host?: string;
  port?: number;
}

const FILE = 'dbs.json';

export function loadDbLogins(profile: Pick<LoadedProfile, 'dir'>): Record<string, DbLogin> {
  let text: string;
  try {
    text = readFileSync(join(profile.dir, FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new Error('not an object');
    const out: Record<string, DbLogin> = {};
    for (const [name, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (v === null || typeof v !== 'object') continue;
      const { db_user, db_name, protocol, expires, host, port } = v as Record<string, unknown>;
      out[name] = {
        ...(typeof db_user === 'string' && db_user ? { db_user } : {}),
        ...(typeof db_name === 'string' && db_name ? { db_name } : {}),
        ...(typeof protocol === 'string' && protocol ? { protocol } : {}),
        ...(typeof expires === 'string' && expires ? { expires } : {}),
        ...(typeof host === 'string' && host ? { host } : {}),
        ...(typeof port === 'number' && Number.isInteger(port) ? { port } : {}),
      };
    }
    return out;
  } catch {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `${join(profile.dir, FILE)} is damaged; run \`wsh db logout\` and \`wsh db login\` again`,
    );
  }
}

function write(profile: Pick<LoadedProfile, 'dir'>, logins: Record<string, DbLogin>): void {
  const path = join(profile.dir, FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(logins, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function saveDbLogin(profile: Pick<LoadedProfile, 'dir'>, db: string, login: DbLogin): void {
  write(profile, { ...loadDbLogins(profile), [db]: login });
}

/** Forgets one database (or all when `db` is undefined), with its certificate; returns the names forgotten. */
export function removeDbLogins(profile: Pick<LoadedProfile, 'dir'>, db?: string): string[] {
  const all = loadDbLogins(profile);
  const names = db === undefined ? Object.keys(all) : Object.hasOwn(all, db) ? [db] : [];
  for (const n of names) {
    delete all[n];
    rmSync(dbCertPath(profile, n), { force: true });
  }
  write(profile, all);
  return names;
}

/** Where the database certificate of `db` lives (the name made safe for a file name). */
export function dbCertPath(profile: Pick<LoadedProfile, 'dir'>, db: string): string {
  const file = encodeURIComponent(db).replace(/^\.+/, (dots) => '%2E'.repeat(dots.length));
  return join(profile.dir, 'dbs', `${file}.crt`);
}

/**
 * Stores the answer of `POST /v1/dbs/login`: the certificate next to the profile's key, and
 * the login's choices (with where to connect) in dbs.json. Returns the certificate's path.
 */
export function saveDbCert(profile: Pick<LoadedProfile, 'dir'>, answer: rpc.DbLoginResponse): string {
  const name = answer.db.name;
  const path = dbCertPath(profile, name);
  mkdirSync(join(profile.dir, 'dbs'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, answer.cert_pem, { mode: 0o644 });
  renameSync(tmp, path);
  saveDbLogin(profile, name, {
    ...(answer.db_user ? { db_user: answer.db_user } : {}),
    ...(answer.db_name ? { db_name: answer.db_name } : {}),
    protocol: answer.db.protocol,
    expires: answer.expires,
    ...(answer.endpoint ? { host: answer.endpoint.host, port: answer.endpoint.port } : {}),
  });
  return path;
}
