/**
 * Which identity `wctl` acts with: the admin identity in the data dir (auth host), else the
 * current `wsh login` profile.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { WardenError } from '@warden/api';
import { ApiClient, clientForProfile, ProfileStore, readIdentityFile, wardenHome } from '@warden/client';
import { parse as parseYaml } from 'yaml';
import { type CommandContext, str } from '../command';

/** The file `warden start` writes (mode 0600) for wctl on the auth host. */
export const ADMIN_IDENTITY_FILE = 'admin-identity.json';

interface AdminIdentity {
  proxy: string;
  cluster: string;
  cert_pem: string;
  key_pem: string;
  host_ca_pems: string[];
}

export interface Session {
  api: ApiClient;
  /** Who we act as, for messages. */
  who: string;
  proxy: string;
  cluster: string;
}

/**
 * The data dir a warden.yaml names (`data_dir`, relative to the file's directory, as warden
 * reads it), or warden's default `./warden-data` when it names none.
 */
export function dataDirFromConfig(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `cannot read config file "${file}": ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${file} is not valid YAML: ${(e as Error).message}`);
  }
  const dir = (doc as { data_dir?: unknown } | null)?.data_dir;
  if (dir === undefined || dir === null) return resolve('warden-data');
  if (typeof dir !== 'string' || dir === '')
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${file}: data_dir must be a path`);
  return resolve(dirname(resolve(file)), dir);
}

export function openSession(ctx: CommandContext): Session {
  const identityFile = str(ctx.values, 'identity');
  if (identityFile) {
    if (str(ctx.values, 'config') || str(ctx.values, 'data-dir'))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'give --identity or --config/--data-dir, not both');
    const profile = readIdentityFile(identityFile);
    return {
      api: clientForProfile(profile),
      who: profile.user,
      proxy: profile.proxy,
      cluster: profile.cluster,
    };
  }
  const config = str(ctx.values, 'config');
  if (config && str(ctx.values, 'data-dir'))
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'give --config or --data-dir, not both');
  const explicit =
    (config && dataDirFromConfig(config)) ??
    str(ctx.values, 'data-dir') ??
    (ctx.env.WARDEN_DATA_DIR || undefined);
  const dir = resolve(explicit ?? 'warden-data');
  const file = join(dir, ADMIN_IDENTITY_FILE);
  if (existsSync(file)) {
    let id: AdminIdentity;
    try {
      id = JSON.parse(readFileSync(file, 'utf8')) as AdminIdentity;
    } catch (e) {
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        `cannot read the admin identity ${file}: ${(e as Error).message}`,
      );
    }
    return {
      api: new ApiClient({
        proxy: id.proxy,
        caPems: id.host_ca_pems,
        identity: { certPem: id.cert_pem, keyPem: id.key_pem },
      }),
      who: 'admin identity',
      proxy: id.proxy,
      cluster: id.cluster,
    };
  }
  if (explicit) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `no admin identity in ${dir} (is this the data dir of a started warden? it writes ${ADMIN_IDENTITY_FILE} at start)`,
    );
  }
  const profile = new ProfileStore(wardenHome(ctx.env)).load();
  if (!profile) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      'no identity: run wctl on the auth host (with --data-dir if the data dir is not ./warden-data), ' +
        'or `wsh login` as a user with the editor role',
    );
  }
  return {
    api: clientForProfile(profile),
    who: profile.user,
    proxy: profile.proxy,
    cluster: profile.cluster,
  };
}
