/**
 * The bot client (`wbot start`): joins with a one-time token, then keeps the certificates in
 * a destination directory fresh by renewing them with the current ones — never the token
 * again, so a restart needs no new token while the certificates are still valid.
 *
 *   <destination>/ (mode 0700)
 *   ├── identity          everything in one file (0600): `wsh -i`, `wctl -i`
 *   ├── key.pem (0600), key.pem.pub, key.pub, key-cert.pub, tls.pem, user-cas.pem,
 *   │   host-cas.pem, known_hosts, profile.json        the `wsh login` profile layout
 *   └── ssh_config        for `ssh -F <destination>/ssh_config user@node.<cluster>`
 *
 * Each renewal makes a new key. Files are replaced by rename, so a reader sees the old set or
 * the new one. Who may import: the CLI (`wbot`) and tests. Tested by test/bots/.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type rpc, WardenError } from '@warden/api';
import { ApiClient, establishTrust } from '../api';
import { UserKey } from '../keys';
import { type LoadedProfile, loginProfile, readProfileDir, writeAtomic, writeProfileDir } from '../profile';
// Not '../ssh': its index loads ssh2, and wsh/wctl read identity files at every start (-i).
import { cpuHasAes, openSshConfig } from '../ssh/openssh-config';
import { type IdentityFile, readIdentityFile } from './identity-file';

export { readIdentityFile };

/** The one-file identity in a bot's destination (`wsh -i DIR/identity`). */
export const IDENTITY_FILE = 'identity';
/** The OpenSSH client configuration in a bot's destination. */
export const SSH_CONFIG_FILE = 'ssh_config';

/** Renew once this fraction of a certificate's lifetime is left (a third: 20 of 60 minutes). */
export const RENEW_WHEN_LEFT = 1 / 3;
/** After a failed renewal, try again this soon (or sooner, before the certificate ends). */
export const RETRY_MS = 30_000;

/**
 * The identity file's profile, read again whenever the file changed: long-running tunnels
 * (`wsh -i DIR/identity proxy db …`) ask at every new connection and so use the certificates
 * `wbot` renewed meanwhile. A file that cannot be read (mid-replacement, removed) leaves the
 * last good profile in use.
 *
 * @example
 *   const current = followIdentityFile('/var/lib/ci-bot/identity');
 *   startDbTunnel({ profile: current, db: 'orders' });
 */
export function followIdentityFile(path: string): () => LoadedProfile {
  const stamp = () => {
    const st = statSync(path, { throwIfNoEntry: false });
    return st ? `${st.mtimeMs}:${st.size}:${st.ino}` : '';
  };
  let seen = stamp();
  let profile = readIdentityFile(path);
  return () => {
    const now = stamp();
    if (now && now !== seen) {
      try {
        profile = readIdentityFile(path);
        seen = now;
      } catch {
        // keep the last good one; the next connection tries again
      }
    }
    return profile;
  };
}

export interface BotOptions {
  /** The destination directory. */
  destination: string;
  /**
   * The command line that runs `… proxy ssh` for ssh_config's ProxyCommand, already quoted for
   * sh: `wbot` gives dist/wsh-proxy-ssh.js (one file, fast to start), else wsh.
   */
  wshCommand: string;
}

/** Writes a login response into the destination (profile files, identity, ssh_config). */
export function writeDestination(
  o: BotOptions,
  proxy: string,
  insecure: boolean,
  hostCaPems: string[],
  key: UserKey,
  res: rpc.LoginResponse,
): LoadedProfile {
  const dir = resolve(o.destination);
  const { profile, secrets } = loginProfile(res, { proxy, insecure, hostCaPems, key });
  const loaded = writeProfileDir(dir, profile, secrets);
  const identity: IdentityFile = {
    warden_identity: 1,
    ...profile,
    key_pem: loaded.keyPem,
    ssh_public_key: loaded.sshPublicKey,
    ssh_cert: loaded.sshCert,
    tls_cert: loaded.tlsCert,
    user_ca_pems: loaded.userCaPems,
    host_ca_pems: loaded.hostCaPems,
    known_hosts: loaded.knownHosts,
  };
  writeAtomic(join(dir, IDENTITY_FILE), `${JSON.stringify(identity, null, 2)}\n`, 0o600);
  const ssh = openSshConfig({
    cluster: res.cluster_name,
    proxy,
    profileDir: dir,
    nodes: [],
    aesFirst: cpuHasAes(),
    wshCommand: `${o.wshCommand} -i ${join(dir, IDENTITY_FILE).replace(/'/g, `'\\''`)}`,
  }).replace(/printed by `wsh config`/, 'written by `wbot start`');
  writeAtomic(join(dir, SSH_CONFIG_FILE), ssh, 0o644);
  return loaded;
}

/** The bot's current identity in its destination, if any (expired or not). */
export function currentIdentity(destination: string): LoadedProfile | undefined {
  const file = join(resolve(destination), IDENTITY_FILE);
  if (existsSync(file)) return readIdentityFile(file);
  return readProfileDir(resolve(destination));
}

/** Joins with a one-time token: the first certificates, written into the destination. */
export async function joinBot(
  o: BotOptions & { proxy: string; token: string; caPin?: string; insecure?: boolean },
): Promise<LoadedProfile> {
  const trust = await establishTrust({
    proxy: o.proxy,
    ...(o.caPin ? { caPin: o.caPin } : {}),
    ...(o.insecure ? { insecure: true } : {}),
  });
  const api = new ApiClient({ proxy: o.proxy, caPems: trust.hostCaPems, insecure: trust.insecure });
  const key = UserKey.generate();
  const res = await api.botJoin({
    token: o.token,
    ssh_public_key: key.sshPublicKey(),
    tls_public_key: key.spkiPem(),
  });
  return writeDestination(o, o.proxy, trust.insecure, trust.hostCaPems, key, res);
}

/** Renews with the current certificates (a new key each time). */
export async function renewBot(o: BotOptions, current: LoadedProfile): Promise<LoadedProfile> {
  if (Date.parse(current.expires) <= Date.now())
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `the bot's certificates in ${current.dir} expired at ${current.expires}; renewal needs valid ones — ` +
        'make a new join token (`wctl bots rm NAME` and `wctl bots add NAME …`) and start again with --token',
    );
  const api = new ApiClient({
    proxy: current.proxy,
    caPems: current.hostCaPems,
    insecure: current.insecure,
    identity: { certPem: current.tlsCert, keyPem: current.keyPem },
  });
  const key = UserKey.generate();
  const res = await api.botRenew({
    ssh_public_key: key.sshPublicKey(),
    tls_public_key: key.spkiPem(),
  });
  return writeDestination(o, current.proxy, current.insecure, current.hostCaPems, key, res);
}

/**
 * When to renew certificates valid from `issuedMs` to `expiresMs`: once a third of the
 * lifetime is left (never in the past).
 */
export function renewAt(issuedMs: number, expiresMs: number, nowMs: number): number {
  const at = expiresMs - (expiresMs - issuedMs) * RENEW_WHEN_LEFT;
  return Math.max(nowMs, at);
}

/** Certificates obtained at `obtainedMs` ending at `expiresMs`; `retryAtMs` after a failure. */
export interface RenewalState {
  obtainedMs: number;
  expiresMs: number;
  retryAtMs?: number;
}

/**
 * When `wbot` next renews the identity and, separately, the outputs (app and kube
 * certificates): each at a third of its own lifetime left, or at its retry time after a
 * failure. `outputs` is `undefined` when none are wanted (never due), `'missing'` when they
 * are wanted but none were written yet (due now). Whoever comes first wakes the loop; a
 * renewed identity always rewrites the outputs (they hold certificates for its key).
 *
 * @example
 *   // a 24 h identity with a 1 h kube certificate: the outputs are due after 40 minutes
 *   nextRenewal(now, { obtainedMs: now, expiresMs: now + 24 * H }, { obtainedMs: now, expiresMs: now + H });
 */
export function nextRenewal(
  nowMs: number,
  identity: RenewalState,
  outputs: RenewalState | 'missing' | undefined,
): { identityAt: number; outputsAt: number } {
  const identityAt = identity.retryAtMs ?? renewAt(identity.obtainedMs, identity.expiresMs, nowMs);
  const outputsAt =
    outputs === undefined
      ? Number.POSITIVE_INFINITY
      : outputs === 'missing'
        ? nowMs
        : (outputs.retryAtMs ?? renewAt(outputs.obtainedMs, outputs.expiresMs, nowMs));
  return { identityAt, outputsAt };
}
