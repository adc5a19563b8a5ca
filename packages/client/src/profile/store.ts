/**
 * The profile store: what `wsh login` leaves on disk for later commands.
 *
 *   $WARDEN_HOME (default ~/.warden), mode 0700
 *   ├── current-profile                 name of the active profile
 *   ├── trusted/<profile>.pem           host CAs trusted for that proxy (kept after logout)
 *   └── profiles/<profile>/             one per proxy, removed by `wsh logout`
 *       ├── profile.json                proxy, cluster, user, roles, logins, expiry
 *       ├── key.pem (0600)              the user's private key (ECDSA P-256, PKCS#8)
 *       ├── key.pub, key.pem.pub        its OpenSSH public key (OpenSSH wants the latter name)
 *       ├── key-cert.pub                the SSH user certificate
 *       ├── tls.pem                     the X.509 client certificate
 *       ├── user-cas.pem, host-cas.pem  CA certificates
 *       ├── known_hosts                 `@cert-authority` line for the host CA
 *       ├── dbs.json, dbs/<db>.crt      `wsh db login` choices and database certificates (db/logins.ts)
 *       └── kube/                       kube certificates (`kube/index.ts`); kube/exec/, the exec
 *                                       plugin's cached credentials, is emptied by every login
 *
 * Files are written to a temporary name and renamed, so a crash never leaves half a profile.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type rpc, WardenError } from '@warden/api';

export interface Profile {
  proxy: string;
  cluster: string;
  user: string;
  roles: string[];
  logins: string[];
  /** RFC3339 expiry of the certificates. */
  expires: string;
  insecure: boolean;
  /** The device trust mode this user's Web UI sessions ask for (from the login answer). */
  webDeviceTrustMode?: string;
}

export interface ProfileSecrets {
  keyPem: string;
  sshPublicKey: string;
  sshCert: string;
  tlsCert: string;
  userCaPems: string[];
  hostCaPems: string[];
  knownHosts: string;
}

/**
 * What a login answer stores (`wsh login`, signup's login, `wbot start`): the profile and its
 * key and certificates. `hostCaPems`: the host CAs the client trusts for this proxy.
 */
export function loginProfile(
  res: rpc.LoginResponse,
  o: {
    proxy: string;
    insecure: boolean;
    hostCaPems: string[];
    key: { privatePem(): string; sshPublicKey(): string };
  },
): { profile: Profile; secrets: ProfileSecrets } {
  return {
    profile: {
      proxy: o.proxy,
      cluster: res.cluster_name,
      user: res.user,
      roles: res.roles,
      logins: res.logins,
      expires: res.expires,
      insecure: o.insecure,
      ...(res.web_device_trust_mode ? { webDeviceTrustMode: res.web_device_trust_mode } : {}),
    },
    secrets: {
      keyPem: o.key.privatePem(),
      sshPublicKey: o.key.sshPublicKey(),
      sshCert: res.ssh_cert,
      tlsCert: res.tls_cert,
      userCaPems: res.user_ca_pems,
      hostCaPems: o.hostCaPems,
      knownHosts: res.host_ca_known_hosts,
    },
  };
}

export interface LoadedProfile extends Profile, ProfileSecrets {
  dir: string;
}

/**
 * The profile, unless its certificates have ended: NOT_LOGGED_IN saying how to log in again.
 * (clientForProfile checks the same; this needs no API client, for `wsh proxy ssh`.)
 */
export function requireUnexpired<P extends Profile>(profile: P): P {
  if (Date.parse(profile.expires) <= Date.now()) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `your certificates for ${profile.proxy} expired at ${profile.expires}; run \`wsh login --proxy=${profile.proxy} --user=${profile.user}\``,
    );
  }
  return profile;
}

export function wardenHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.WARDEN_HOME || join(homedir(), '.warden');
}

/** A file-system-safe profile name for a proxy address (`127.0.0.1:3080` → `127.0.0.1_3080`). */
export function profileName(proxy: string): string {
  return proxy.replace(/[^A-Za-z0-9.-]/g, '_');
}

/** Writes a file under a temporary name, then renames it: readers never see half a file. */
export function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function splitPems(text: string | undefined): string[] {
  return (text ?? '').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * A proxy address as users may type it: `HOST:PORT`, or the `https://HOST:PORT` URL that
 * `warden start` prints (a trailing `/` allowed) → `HOST:PORT`. `http://` is refused: the
 * proxy speaks only TLS.
 *
 * @example
 *   normalizeProxy('https://127.0.0.1:3080/'); // '127.0.0.1:3080'
 */
export function normalizeProxy(text: string): string {
  const t = text.trim();
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]+)\/?$/i.exec(t);
  if (!m) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t))
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `invalid proxy address "${text}": expected HOST:PORT`,
      );
    return t;
  }
  if (m[1]!.toLowerCase() !== 'https') {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid proxy address "${text}": the proxy speaks HTTPS only; give HOST:PORT or https://HOST:PORT`,
    );
  }
  return m[2]!;
}

/** What `wsh` remembers across logouts: the last proxy and user (`~/.warden/last.json`). */
export interface LastUsed {
  proxy: string;
  user?: string;
}

/** The OTP code a client sent last (its hash), for the "already used" hint. */
export interface LastOtp {
  user: string;
  code_sha256: string;
  at: number;
}

export class ProfileStore {
  readonly home: string;

  constructor(home: string = wardenHome()) {
    this.home = home;
  }

  #profileDir(proxy: string): string {
    return join(this.home, 'profiles', profileName(proxy));
  }

  /** Host CAs trusted for this proxy, from an earlier login or signup. */
  trustedCas(proxy: string): string[] {
    return splitPems(readOptional(join(this.home, 'trusted', `${profileName(proxy)}.pem`)));
  }

  trust(proxy: string, hostCaPems: string[]): void {
    const dir = join(this.home, 'trusted');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomic(join(dir, `${profileName(proxy)}.pem`), `${hostCaPems.join('\n')}\n`, 0o644);
  }

  save(profile: Profile, secrets: ProfileSecrets): LoadedProfile {
    mkdirSync(this.home, { recursive: true, mode: 0o700 });
    const loaded = writeProfileDir(this.#profileDir(profile.proxy), profile, secrets);
    writeAtomic(join(this.home, 'current-profile'), `${profileName(profile.proxy)}\n`, 0o600);
    this.trust(profile.proxy, secrets.hostCaPems);
    this.setLastUsed({ proxy: profile.proxy, user: profile.user });
    return loaded;
  }

  /**
   * Replaces the certificates of a saved profile (for the same key), e.g. with device
   * extensions: only their files and, when the expiry changed, profile.json are written (each
   * atomically; every other file is as the login just wrote it). The kube exec plugin's
   * cached credentials go, as at every save.
   */
  saveCertificates(
    profile: LoadedProfile,
    certs: { sshCert: string; tlsCert: string; expires: string },
  ): LoadedProfile {
    dropKubeExecCache(profile.dir);
    writeAtomic(join(profile.dir, 'key-cert.pub'), `${certs.sshCert.trim()}\n`, 0o644);
    writeAtomic(join(profile.dir, 'tls.pem'), certs.tlsCert, 0o644);
    const saved = { ...profile, ...certs };
    if (certs.expires !== profile.expires) {
      const { proxy, cluster, user, roles, logins, expires, insecure, webDeviceTrustMode } = saved;
      const fields: Profile = { proxy, cluster, user, roles, logins, expires, insecure };
      if (webDeviceTrustMode) fields.webDeviceTrustMode = webDeviceTrustMode;
      writeAtomic(join(profile.dir, 'profile.json'), `${JSON.stringify(fields, null, 2)}\n`, 0o600);
    }
    return saved;
  }

  /** The profile for `proxy`, or the current one; undefined when not logged in. */
  load(proxy?: string): LoadedProfile | undefined {
    const name = proxy ? profileName(proxy) : readOptional(join(this.home, 'current-profile'))?.trim();
    if (!name) return undefined;
    return readProfileDir(join(this.home, 'profiles', name));
  }

  /** Like load(), but a missing profile is an error that says how to log in. */
  require(proxy?: string): LoadedProfile {
    const p = this.load(proxy);
    if (!p) {
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        'not logged in; run `wsh login --proxy=HOST:PORT --user=NAME`',
      );
    }
    return p;
  }

  /** The last proxy and user logged in with (kept after `wsh logout`), if any. */
  lastUsed(): LastUsed | undefined {
    return readJson<LastUsed>(join(this.home, 'last.json'), (v) => typeof v.proxy === 'string');
  }

  setLastUsed(last: LastUsed): void {
    mkdirSync(this.home, { recursive: true, mode: 0o700 });
    writeAtomic(join(this.home, 'last.json'), `${JSON.stringify(last)}\n`, 0o600);
  }

  lastOtp(): LastOtp | undefined {
    return readJson<LastOtp>(
      join(this.home, 'last-otp.json'),
      (v) => typeof v.user === 'string' && typeof v.code_sha256 === 'string' && typeof v.at === 'number',
    );
  }

  setLastOtp(last: LastOtp): void {
    mkdirSync(this.home, { recursive: true, mode: 0o700 });
    writeAtomic(join(this.home, 'last-otp.json'), `${JSON.stringify(last)}\n`, 0o600);
  }

  /** Removes the profile (keys and certificates); returns the removed profile's proxy. */
  remove(proxy?: string): string | undefined {
    const p = this.load(proxy);
    if (!p) return undefined;
    rmSync(p.dir, { recursive: true, force: true });
    const current = readOptional(join(this.home, 'current-profile'))?.trim();
    if (current === profileName(p.proxy)) rmSync(join(this.home, 'current-profile'), { force: true });
    return p.proxy;
  }
}

/**
 * Writes a profile's files into `dir` (made with mode 0700): the key (0600), its OpenSSH
 * public halves, the certificates, CAs and known_hosts, and profile.json last — a profile
 * counts as present only once everything else is written. `wsh login` profiles and the
 * destination of a bot (`wbot start`) share this layout.
 */
export function writeProfileDir(dir: string, profile: Profile, secrets: ProfileSecrets): LoadedProfile {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  dropKubeExecCache(dir);
  writeAtomic(join(dir, 'key.pem'), secrets.keyPem, 0o600);
  writeAtomic(join(dir, 'key.pub'), `${secrets.sshPublicKey.trim()}\n`, 0o644);
  // OpenSSH pairs IdentityFile key.pem with key.pem.pub (it cannot read a PKCS#8 public half).
  writeAtomic(join(dir, 'key.pem.pub'), `${secrets.sshPublicKey.trim()}\n`, 0o644);
  writeAtomic(join(dir, 'key-cert.pub'), `${secrets.sshCert.trim()}\n`, 0o644);
  writeAtomic(join(dir, 'tls.pem'), secrets.tlsCert, 0o644);
  writeAtomic(join(dir, 'user-cas.pem'), `${secrets.userCaPems.join('\n')}\n`, 0o644);
  writeAtomic(join(dir, 'host-cas.pem'), `${secrets.hostCaPems.join('\n')}\n`, 0o644);
  writeAtomic(join(dir, 'known_hosts'), `${secrets.knownHosts.trim()}\n`, 0o644);
  writeAtomic(join(dir, 'profile.json'), `${JSON.stringify(profile, null, 2)}\n`, 0o600);
  return { ...profile, ...secrets, dir };
}

/**
 * The kube exec plugin's cached credentials stand for the previous certificates (their user,
 * roles and device): its shell script cannot tell, so they go first (`KUBE_EXEC_CACHE_DIR`).
 * So do the per-cluster caches of earlier versions (`kube/<cluster>.json`).
 */
function dropKubeExecCache(dir: string): void {
  rmSync(join(dir, 'kube', 'exec'), { recursive: true, force: true });
  for (const f of readdirOrEmpty(join(dir, 'kube'))) {
    if (f.endsWith('.json')) rmSync(join(dir, 'kube', f), { force: true });
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The profile whose files are in `dir`, or undefined when it has no profile.json. */
export function readProfileDir(dir: string): LoadedProfile | undefined {
  const json = readOptional(join(dir, 'profile.json'));
  if (!json) return undefined;
  let profile: Profile;
  try {
    profile = JSON.parse(json) as Profile;
  } catch {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `the profile in ${dir} is damaged; run \`wsh logout\` and log in again`,
    );
  }
  const read = (f: string) => readOptional(join(dir, f)) ?? '';
  return {
    ...profile,
    dir,
    keyPem: read('key.pem'),
    sshPublicKey: read('key.pub').trim(),
    sshCert: read('key-cert.pub').trim(),
    tlsCert: read('tls.pem'),
    userCaPems: splitPems(read('user-cas.pem')),
    hostCaPems: splitPems(read('host-cas.pem')),
    knownHosts: read('known_hosts').trim(),
  };
}

/** A small JSON file, or undefined when missing, damaged or not the expected shape. */
function readJson<T>(path: string, valid: (v: Record<string, unknown>) => boolean): T | undefined {
  const text = readOptional(path);
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && valid(v as Record<string, unknown>) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}
