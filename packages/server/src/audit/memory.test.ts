import { runAuditLogConformance } from '../../../../test/support/audit-conformance';
import { MemoryAuditLog } from './memory';

runAuditLogConformance('memory', async ({ clock }) => new MemoryAuditLog({ clock }));
