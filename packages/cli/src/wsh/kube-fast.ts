/**
 * The fast path of `wsh kube credentials`. kubectl runs the exec plugin before every command,
 * and loading all of wsh costs about 0.3 s of start-up (module compilation), more than the
 * request itself; so `wsh.ts` tries this first, and it touches nothing but `node:` built-ins.
 * Kubeconfigs written since put a shell script in front (`KUBE_EXEC_SCRIPT`), so this serves
 * those of earlier versions, which run wsh directly.
 * It answers only from a cached kube credential that `kubeCredential` (@warden/client
 * `kube/index.ts`) would also return — same file (`kubeExecCacheFile`), same checks (issued for
 * the current login certificate, before its first line's time, more than a minute left) — and prints the same ExecCredential; anything else
 * (no cache, an expiring or stale one, other flags) returns undefined and the full command runs.
 * `kube-fast.test.ts` checks that both agree on what they accept.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The ExecCredential line for `args` (after `kube credentials`), or undefined to run the full command. */
export function cachedKubeCredentials(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  now = Date.now(),
): string | undefined {
  let proxy: string | undefined;
  let cluster = 'default';
  for (const a of args) {
    const m = /^--(proxy|cluster)=(.+)$/.exec(a);
    if (!m) return undefined;
    if (m[1] === 'proxy') proxy = m[2];
    else cluster = m[2]!;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(cluster)) return undefined;
  try {
    const home = env.WARDEN_HOME || join(homedir(), '.warden');
    const name = proxy
      ? proxy.replace(/[^A-Za-z0-9.-]/g, '_')
      : readFileSync(join(home, 'current-profile'), 'utf8').trim();
    if (!name) return undefined;
    const dir = join(home, 'profiles', name);
    const [until, json, cachedLogin] = readFileSync(
      join(dir, 'kube', 'exec', `${cluster}.cred`),
      'utf8',
    ).split('\n');
    const login = createHash('sha256')
      .update(readFileSync(join(dir, 'tls.pem'), 'utf8'))
      .digest('hex');
    const status = (JSON.parse(json!) as { status?: Record<string, unknown> }).status ?? {};
    if (
      typeof status.clientCertificateData !== 'string' ||
      typeof status.clientKeyData !== 'string' ||
      typeof status.expirationTimestamp !== 'string'
    )
      return undefined;
    const expires = Date.parse(status.expirationTimestamp);
    if (cachedLogin !== login || !(Number(until) * 1000 > now) || !(expires - now > 60_000)) return undefined;
    return `${json}\n`;
  } catch {
    return undefined;
  }
}
