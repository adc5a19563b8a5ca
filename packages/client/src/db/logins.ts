/**
 * The database choices `wsh db login NAME --db-user --db-name` remembers, per profile:
 * `<profile dir>/dbs.json` = `{ "<db>": { "db_user": "…", "db_name": "…" } }`. They are the
 * defaults of `wsh db connect`, `wsh proxy db` and `wsh db config`; `wsh db logout` forgets
 * them, and `wsh logout` (which removes the profile dir) too.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WardenError } from '@warden/api';
import type { LoadedProfile } from '../profile';

export interface DbLogin {
  db_user?: string;
  db_name?: string;
  /** Protocol of the database when it was chosen (for `wsh db config`). */
  protocol?: string;
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
      const { db_user, db_name, protocol } = v as Record<string, unknown>;
      out[name] = {
        ...(typeof db_user === 'string' && db_user ? { db_user } : {}),
        ...(typeof db_name === 'string' && db_name ? { db_name } : {}),
        ...(typeof protocol === 'string' && protocol ? { protocol } : {}),
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

/** Forgets one database (or all when `db` is undefined); returns the names forgotten. */
export function removeDbLogins(profile: Pick<LoadedProfile, 'dir'>, db?: string): string[] {
  const all = loadDbLogins(profile);
  const names = db === undefined ? Object.keys(all) : Object.hasOwn(all, db) ? [db] : [];
  for (const n of names) delete all[n];
  write(profile, all);
  return names;
}
