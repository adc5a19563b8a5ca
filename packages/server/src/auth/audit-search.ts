/**
 * `wctl audit search`: the audit log's search with the API's defaults. Permissions are
 * checked by the caller (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import type { AuditLog } from '../audit';

export interface AuditSearchQuery {
  from?: string;
  to?: string;
  types?: string[];
  user?: string;
  limit?: number;
}

/** At most this many events when the query does not say. */
export const AUDIT_SEARCH_DEFAULT_LIMIT = 500;

export class AuditSearch {
  readonly #audit: AuditLog;

  constructor(audit: AuditLog) {
    this.#audit = audit;
  }

  async search(q: AuditSearchQuery): Promise<Record<string, unknown>[]> {
    const events = await this.#audit.search({
      from: q.from,
      to: q.to,
      types: q.types?.length ? q.types : undefined,
      user: q.user,
      limit: q.limit ?? AUDIT_SEARCH_DEFAULT_LIMIT,
    });
    return events as unknown as Record<string, unknown>[];
  }
}
