/**
 * What `start.ts` hands each protocol's composition (`startDbAccess`, `startAppAccess`,
 * `startKubeAccess`): the shared stores and the process's one access checker and session
 * monitor. Each composition's own deps add its config and the rest. Internal to `bin/`.
 */
import type { AccessChecker, SessionMonitor } from '../access';
import type { AuditLog } from '../audit';
import type { CertAuthorities } from '../ca';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { Services } from '../services';

export interface ProtocolDeps {
  services: Services;
  cas: CertAuthorities;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  /** The process's access checker and session monitor (one of each, built by the caller). */
  checker: AccessChecker;
  monitor: SessionMonitor;
}
