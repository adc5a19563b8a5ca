/**
 * App certificates from `wsh app login NAME`, per profile, next to the profile's key:
 *
 *   <profile dir>/apps/<name>.crt    the app certificate (PEM); its key is the profile's key.pem
 *   <profile dir>/apps/<name>.json   { session_id, uri, public_addr, expires }
 *
 * `wsh app logout` forgets them, and `wsh logout` (which removes the profile dir) too.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type rpc, WardenError } from '@warden/api';
import type { LoadedProfile } from '../profile';

export interface AppLogin {
  name: string;
  certPem: string;
  /** Where the certificate lives on disk (for curl --cert). */
  certPath: string;
  sessionId: string;
  uri: string;
  publicAddr: string;
  expires: string;
}

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function dir(profile: Pick<LoadedProfile, 'dir'>): string {
  return join(profile.dir, 'apps');
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `"${name}" is not an app name`);
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/** Stores the answer of `POST /v1/apps/login`. */
export function saveAppLogin(profile: Pick<LoadedProfile, 'dir'>, answer: rpc.AppLoginResponse): AppLogin {
  const name = answer.app.name;
  checkName(name);
  mkdirSync(dir(profile), { recursive: true, mode: 0o700 });
  const certPath = join(dir(profile), `${name}.crt`);
  writeAtomic(certPath, answer.cert_pem, 0o644);
  const meta = {
    session_id: answer.session_id,
    uri: answer.uri,
    public_addr: answer.app.public_addr,
    expires: answer.expires,
  };
  writeAtomic(join(dir(profile), `${name}.json`), `${JSON.stringify(meta, null, 2)}\n`, 0o600);
  return {
    name,
    certPem: answer.cert_pem,
    certPath,
    sessionId: answer.session_id,
    uri: answer.uri,
    publicAddr: answer.app.public_addr,
    expires: answer.expires,
  };
}

/** The stored app login for `name`, or undefined (also when it expired). */
export function loadAppLogin(
  profile: Pick<LoadedProfile, 'dir'>,
  name: string,
  now = Date.now(),
): AppLogin | undefined {
  checkName(name);
  const certPath = join(dir(profile), `${name}.crt`);
  let certPem: string;
  let meta: { session_id?: unknown; uri?: unknown; public_addr?: unknown; expires?: unknown };
  try {
    certPem = readFileSync(certPath, 'utf8');
    meta = JSON.parse(readFileSync(join(dir(profile), `${name}.json`), 'utf8')) as typeof meta;
  } catch {
    return undefined;
  }
  if (
    typeof meta.session_id !== 'string' ||
    typeof meta.uri !== 'string' ||
    typeof meta.public_addr !== 'string' ||
    typeof meta.expires !== 'string'
  )
    return undefined;
  if (!(Date.parse(meta.expires) > now)) return undefined;
  return {
    name,
    certPem,
    certPath,
    sessionId: meta.session_id,
    uri: meta.uri,
    publicAddr: meta.public_addr,
    expires: meta.expires,
  };
}

/** Names of the stored app logins. */
export function listAppLogins(profile: Pick<LoadedProfile, 'dir'>): string[] {
  try {
    return readdirSync(dir(profile))
      .filter((f) => f.endsWith('.crt'))
      .map((f) => f.slice(0, -4))
      .sort();
  } catch {
    return [];
  }
}

/** Forgets one app login (or all); returns the names forgotten. */
export function removeAppLogins(profile: Pick<LoadedProfile, 'dir'>, name?: string): string[] {
  const names =
    name === undefined ? listAppLogins(profile) : listAppLogins(profile).filter((n) => n === name);
  for (const n of names) {
    rmSync(join(dir(profile), `${n}.crt`), { force: true });
    rmSync(join(dir(profile), `${n}.json`), { force: true });
  }
  return names;
}
