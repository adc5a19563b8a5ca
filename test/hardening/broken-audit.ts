/**
 * A real `warden start` on PostgreSQL whose audit store can be broken for real, shared by the
 * audit-failure tests (issue 15 item 5): a trigger on the audit table raises `disk_full`
 * (SQLSTATE 53100) for the event types named in `breakAudit` (`*` for all), after an optional
 * stall, as a full or failing disk would; `breakAudit()` with no types repairs it. `metric`
 * reads `warden_audit_write_failures_total{type}` from the diag listener.
 */
import {
  freePort,
  type PostgresServer,
  startPostgres,
  startWarden,
  type WardenProcess,
  wardenStorage,
} from '@warden/testkit';

const DB_PASSWORD = 'db-secret-a11d';

export interface BreakableAudit {
  pg: PostgresServer;
  w: WardenProcess;
  /** Makes the audit store refuse events of these types (`*`: all); none repairs it. */
  breakAudit(...types: string[]): void;
  /** How long a refused write takes before it fails (a disk that stalls, then reports full). */
  stallAudit(seconds: number): void;
  /** `warden_audit_write_failures_total` for one event type. */
  metric(type: string): Promise<number>;
  stop(): Promise<void>;
}

/** Starts PostgreSQL and warden on it (`extraConfig`: more lines of warden.yaml), trigger installed. */
export async function startWithBreakableAudit(extraConfig: string[] = []): Promise<BreakableAudit> {
  const pg = await startPostgres({ password: DB_PASSWORD });
  const diag = `127.0.0.1:${await freePort()}`;
  const storage = wardenStorage(pg, DB_PASSWORD, 'aud');
  let w: WardenProcess;
  try {
    w = await startWarden({
      configYaml: [
        `diag_addr: ${diag}`,
        'auth_service:',
        '  authentication:',
        '    second_factor: "off"',
        ...extraConfig,
        storage.yaml,
      ].join('\n'),
      env: storage.env,
    });
  } catch (e) {
    await pg.stop();
    throw e;
  }
  pg.psql(`
    CREATE TABLE aud.audit_fail (type text PRIMARY KEY);
    CREATE TABLE aud.audit_stall (seconds float NOT NULL);
    INSERT INTO aud.audit_stall VALUES (0);
    CREATE FUNCTION aud.audit_fail() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM aud.audit_fail WHERE type IN (NEW.type, '*')) THEN
        PERFORM pg_sleep((SELECT seconds FROM aud.audit_stall));
        RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER audit_fail BEFORE INSERT ON aud.audit_events FOR EACH ROW EXECUTE FUNCTION aud.audit_fail();
  `);
  return {
    pg,
    w,
    breakAudit: (...types) =>
      pg.psql(
        `DELETE FROM aud.audit_fail; ${types.map((t) => `INSERT INTO aud.audit_fail VALUES ('${t}');`).join(' ')}`,
      ),
    stallAudit: (seconds) => pg.psql(`UPDATE aud.audit_stall SET seconds = ${seconds};`),
    metric: async (type) => {
      const text = await (await fetch(`http://${diag}/metrics`)).text();
      const m = new RegExp(
        `^warden_audit_write_failures_total\\{type="${type.replaceAll('.', '\\.')}"\\} (\\d+)$`,
        'm',
      ).exec(text);
      return m ? Number(m[1]) : 0;
    },
    stop: async () => {
      await w.stop();
      await pg.stop();
    },
  };
}
