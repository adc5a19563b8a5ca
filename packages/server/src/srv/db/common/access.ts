/**
 * db_service's view of authorization beyond the one AccessChecker (DESIGN §5): the `db`
 * target a resource presents to it, and the list of databases a user may reach (with the db
 * users and names their roles allow), from roles the checker resolved against its live view.
 * Decisions themselves are `checker.checkAccess(identity, dbTarget(db), { dbUser, dbName })`;
 * live sessions are ended by the SessionMonitor.
 * Internal to `srv/db`; the public surface is `common/index.ts`. Tested by `access.test.ts`.
 */
import type { DbResource } from '@warden/api';
import { type DbTarget, expandValues, matchLabels, type ResolvedIdentity } from '../../../access';

/** A database as `wsh db ls` shows it. */
export interface DbInfo {
  name: string;
  protocol: string;
  labels: Record<string, string>;
  /** Db users the caller's roles allow here (trait templates expanded; may hold `*`). */
  db_users: string[];
  db_names: string[];
}

/** What the access checker decides on for a `db` resource. */
export function dbTarget(db: DbResource): DbTarget {
  return { kind: 'db', name: db.metadata.name, labels: { ...(db.metadata.labels ?? {}) } };
}

/**
 * The databases whose labels some role of the caller allows and no role denies outright,
 * with the db users and names those roles allow, sorted by name. `identity` is resolved
 * (`checker.resolve`): a role deleted since the certificate was issued grants nothing.
 *
 * @example
 *   reachableDbs(checker.resolve(identity), await services.dbs.list());
 */
export function reachableDbs(id: ResolvedIdentity, dbs: readonly DbResource[]): DbInfo[] {
  const out: DbInfo[] = [];
  for (const db of dbs) {
    const labels = { ...(db.metadata.labels ?? {}) };
    const deniedOutright = id.roles.some((r) => {
      const d = r.spec.deny;
      return (
        d.db_labels !== undefined &&
        matchLabels(d.db_labels, labels) &&
        (d.db_users ?? []).length === 0 &&
        (d.db_names ?? []).length === 0
      );
    });
    if (deniedOutright) continue;
    const allowing = id.roles.filter((r) => matchLabels(r.spec.allow.db_labels, labels));
    if (allowing.length === 0) continue;
    const users = new Set<string>();
    const names = new Set<string>();
    for (const r of allowing) {
      for (const u of expandValues(r.spec.allow.db_users, id.traits)) users.add(u);
      for (const n of expandValues(r.spec.allow.db_names, id.traits)) names.add(n);
    }
    out.push({
      name: db.metadata.name,
      protocol: db.spec.protocol,
      labels,
      db_users: [...users],
      db_names: [...names],
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
