/** Reading `[login@]node` targets as ssh does (`wsh ssh`, `wsh proxy ssh`). */
import { WardenError } from '@warden/api';
import type { LoadedProfile } from '@warden/client';

/** `[login@]node` → its parts (the last `@` separates, as in ssh). */
export function parseTarget(target: string): { login?: string; node: string } {
  const at = target.lastIndexOf('@');
  const login = at >= 0 ? target.slice(0, at) : undefined;
  const node = at >= 0 ? target.slice(at + 1) : target;
  if (node === '' || login === '' || /\s/.test(target)) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid target "${target}": expected [LOGIN@]NODE`);
  }
  return login === undefined ? { node } : { login, node };
}

/** The login to use: `--login`, else the one in `login@node`, else the profile's first login. */
export function chooseLogin(
  flag: string | undefined,
  fromTarget: string | undefined,
  profile: LoadedProfile,
): string {
  if (flag && fromTarget && flag !== fromTarget) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `two logins given: --login=${flag} and ${fromTarget}@…; give one`,
    );
  }
  const login = flag ?? fromTarget ?? profile.logins[0];
  if (!login) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'your roles grant no logins; pass LOGIN@NODE or ask an admin for a role with logins',
    );
  }
  return login;
}

/** `node.<cluster>` → `node`; other names unchanged. */
export function stripCluster(host: string, cluster: string): string {
  return cluster && host.endsWith(`.${cluster}`) && host.length > cluster.length + 1
    ? host.slice(0, -(cluster.length + 1))
    : host;
}

/** The node name in what OpenSSH passes as %h: `node`, `node.<cluster>`, `node:port`. */
export function nodeFromHost(host: string, cluster: string): string {
  return stripCluster(host.replace(/:\d+$/, ''), cluster);
}
