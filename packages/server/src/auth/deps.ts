/**
 * What the auth services share (built once in `bin/`), and the role lookup they use.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import type { AuditEventInput, RoleResource } from '@warden/api';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Backend } from '../backend';
import type { CertAuthorities } from '../ca';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { Services } from '../services';

export interface AuthDeps {
  clock: Clock;
  backend: Backend;
  services: Services;
  cas: CertAuthorities;
  audit: AuditLog;
  logger: Logger;
  clusterName: string;
  /** host:port clients are told to use. */
  proxyPublicAddr: string;
}

/** Records an audit event for an auth service (see `writeAuditEvent`). */
export function auditWith(d: Pick<AuthDeps, 'audit' | 'logger'>): (event: AuditEventInput) => Promise<void> {
  return (event) => writeAuditEvent(d.audit, d.logger, event);
}

/** The roles of these names that exist; a missing role grants nothing (it may have been deleted). */
export async function findRoles(services: Services, names: readonly string[]): Promise<RoleResource[]> {
  const out: RoleResource[] = [];
  for (const n of names) {
    const role = await services.roles.find(n);
    if (role) out.push(role);
  }
  return out;
}
