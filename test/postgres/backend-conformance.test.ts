/**
 * The backend conformance suite against a real PostgreSQL (one server for the file, a fresh
 * schema per backend). TTL time comes from the suite's FakeClock through `ttlClock`; the
 * database-clock behaviour is covered by `backend-faults.test.ts`.
 */
import { after, test } from 'node:test';
import { PostgresBackend } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { runBackendConformance } from '../../packages/server/src/backend/conformance';

const check = requirePostgres();
if (check.ok) {
  const server = await startPostgres();
  after(() => server.stop());
  let n = 0;
  runBackendConformance('postgres', ({ clock, maxHistory }) =>
    PostgresBackend.open({
      connString: server.connString,
      schema: `conformance_${++n}`,
      ttlClock: clock,
      reapIntervalMs: 0,
      ...(maxHistory === undefined ? {} : { maxHistory }),
    }),
  );
} else {
  test('backend conformance: postgres', { skip: check.skip }, () => undefined);
}
