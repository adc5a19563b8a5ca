/**
 * Reading the one-file identity (`wsh -i FILE`, `wctl -i FILE`) that `wbot start` writes. Its
 * own module, without the bot client: wsh and wctl read identity files at start-up, and
 * `wsh proxy ssh` (OpenSSH's ProxyCommand) loads nothing it does not use. Internal to bot/
 * (index.ts re-exports readIdentityFile). Tested by identity-file.test.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { WardenError } from '@warden/api';
import type { LoadedProfile, Profile } from '../profile';

/** What an identity file holds of a profile, as profile.json has it. */
type ProfileFields = Pick<
  Profile,
  'proxy' | 'cluster' | 'user' | 'roles' | 'logins' | 'expires' | 'insecure'
>;

/**
 * The one-file identity (`wsh -i FILE`), as `wbot start` writes it: a profile's fields, and
 * its key and certificates inline.
 */
export interface IdentityFile extends ProfileFields {
  warden_identity: 1;
  key_pem: string;
  ssh_public_key: string;
  ssh_cert: string;
  tls_cert: string;
  user_ca_pems: string[];
  host_ca_pems: string[];
  known_hosts: string;
}

/**
 * What each field must hold: a non-empty string, any string, a boolean, a list of strings,
 * or a non-empty one. Checked by hand, not with zod: wsh and wctl read identity files at
 * start-up (-i), and zod takes longer to load than the rest of `wctl get`.
 */
const IDENTITY_FIELDS: Record<
  Exclude<keyof IdentityFile, 'warden_identity'>,
  'text' | 'string' | 'boolean' | 'list' | 'list1'
> = {
  proxy: 'text',
  cluster: 'text',
  user: 'text',
  roles: 'list',
  logins: 'list',
  expires: 'string',
  insecure: 'boolean',
  key_pem: 'text',
  ssh_public_key: 'text',
  ssh_cert: 'text',
  tls_cert: 'text',
  user_ca_pems: 'list',
  host_ca_pems: 'list1',
  known_hosts: 'string',
};

function isIdentityFile(v: unknown): v is IdentityFile {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (o.warden_identity !== 1) return false;
  return Object.entries(IDENTITY_FIELDS).every(([field, want]) => {
    const x = o[field];
    switch (want) {
      case 'text':
        return typeof x === 'string' && x.length > 0;
      case 'string':
        return typeof x === 'string';
      case 'boolean':
        return typeof x === 'boolean';
      default:
        return Array.isArray(x) && x.every((e) => typeof e === 'string') && (want === 'list' || x.length > 0);
    }
  });
}

/**
 * The profile an identity file holds (`wsh -i FILE`, `wctl -i FILE`): its directory is the
 * profile directory, so OpenSSH files written beside it (a bot's destination) are used.
 */
export function readIdentityFile(path: string): LoadedProfile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `cannot read the identity file ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isIdentityFile(parsed)) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `${path} is not a Warden identity file (\`wbot start\` writes one into its --destination)`,
    );
  }
  return {
    proxy: parsed.proxy,
    cluster: parsed.cluster,
    user: parsed.user,
    roles: parsed.roles,
    logins: parsed.logins,
    expires: parsed.expires,
    insecure: parsed.insecure,
    dir: dirname(resolve(path)),
    keyPem: parsed.key_pem,
    sshPublicKey: parsed.ssh_public_key,
    sshCert: parsed.ssh_cert,
    tlsCert: parsed.tls_cert,
    userCaPems: parsed.user_ca_pems,
    hostCaPems: parsed.host_ca_pems,
    knownHosts: parsed.known_hosts,
  };
}
