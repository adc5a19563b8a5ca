import { runAuditLogConformance } from './conformance';
import { MemoryAuditLog } from './memory';

runAuditLogConformance('memory', async ({ clock }) => new MemoryAuditLog({ clock }));
