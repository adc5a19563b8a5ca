/**
 * The PostgreSQL backend's schema (version 3) and the migration runner shared with the
 * PostgreSQL audit log. Internal to `backend/` (the runner is exported for `audit/`).
 *
 * Tables, in the configured schema (default `warden`):
 * - `meta(name, value)`: `schema_version`, `rev` (the revision counter, one row whose lock
 *   every writer takes first) and `compacted_rev` (a separate row, so compaction never blocks
 *   writers).
 * - `items(key, value, create_rev, mod_rev, expires)`: the live key space. Keys are
 *   `COLLATE "C"` (byte order = code point order, as in every backend); values are `bytea`
 *   holding UTF-8, so any JavaScript string (NUL included) round-trips.
 * - `events(rev, type, key, value, create_rev, expires)`: the event log, one row per revision.
 *
 * Every write is ONE call of a PL/pgSQL function, so one round trip and one transaction:
 *
 *   write(op, key, …)            reap(now, limit, wait)        compact(rev)
 *   1. lock meta 'rev' row       1. advisory lock (try)        1. check rev <= head
 *   2. now := database clock     2. lock meta 'rev' row        2. raise compacted_rev
 *   3. reap expired (batch)      3. reap a batch               3. delete old events
 *   4. conditional change        4. store rev, NOTIFY
 *   5. store rev, NOTIFY
 *
 * Because the counter's row lock is held until commit, revision N+1 cannot be taken before
 * the transaction holding N commits: revisions are gap-free AND committed in order, so a
 * reader that sees `rev = R` sees every event up to R (the watch relies on this). Times for
 * TTLs come from the database (`clock_timestamp()`, read after the lock so time never runs
 * backwards along revisions); `p_now` replaces it only in tests.
 */
import { createHash } from 'node:crypto';
import { WardenError } from '@warden/api';
import type pg from 'pg';
import type { PostgresPool } from './postgres-connection';

export const POSTGRES_SCHEMA_VERSION = 3;

/** Schema names: lower-case letters, digits and `_`, at most 48 characters, not `pg_…`. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

export function checkSchemaName(schema: unknown): asserts schema is string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      'schema must be 1-48 lower-case letters, digits or _, starting with a letter or _ (not pg_)',
    );
  }
}

/** A 64-bit advisory lock key for `purpose` in `schema`, as a SQL literal. */
export function advisoryKey(purpose: string, schema: string): string {
  return createHash('sha256').update(`warden/${purpose}/${schema}`).digest().readBigInt64BE(0).toString();
}

export interface BackendSchema {
  schema: string;
  /** The quoted schema identifier for SQL text. */
  q: string;
  /** The LISTEN/NOTIFY channel carrying new revisions (version 1). */
  channel: string;
  /** The channel carrying each new revision's event, or the revision alone (version 2). */
  eventChannel: string;
  reapLockKey: string;
}

export function backendSchema(schema: string): BackendSchema {
  checkSchemaName(schema);
  return {
    schema,
    q: `"${schema}"`,
    channel: `warden_${schema}`,
    eventChannel: `warden_${schema}_events`,
    reapLockKey: advisoryKey('reap', schema),
  };
}

/** The milliseconds-since-epoch expression of the database clock. */
const DB_NOW = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

function backendV1(n: BackendSchema): string {
  const s = n.q;
  const fn = 'SET search_path = pg_catalog, pg_temp';
  return `
CREATE TABLE ${s}.items (
  key text COLLATE "C" NOT NULL PRIMARY KEY,
  value bytea NOT NULL,
  create_rev bigint NOT NULL,
  mod_rev bigint NOT NULL,
  expires bigint
);
CREATE INDEX items_expires ON ${s}.items (expires) WHERE expires IS NOT NULL;
CREATE TABLE ${s}.events (
  rev bigint NOT NULL PRIMARY KEY,
  type text NOT NULL CHECK (type IN ('put', 'delete')),
  key text COLLATE "C" NOT NULL,
  value bytea,
  create_rev bigint,
  expires bigint,
  CHECK ((type = 'put') = (value IS NOT NULL AND create_rev IS NOT NULL))
);
INSERT INTO ${s}.meta (name, value) VALUES ('rev', 0), ('compacted_rev', 0);

-- The TTL clock: the database's, unless a test passes its own time.
CREATE FUNCTION ${s}.db_now(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE ${fn} AS $$
  SELECT coalesce(p_now, ${DB_NOW})
$$;

CREATE FUNCTION ${s}.put_item(p_rev bigint, p_key text, p_value bytea, p_create_rev bigint, p_expires bigint)
RETURNS void LANGUAGE sql ${fn} AS $$
  INSERT INTO ${s}.items (key, value, create_rev, mod_rev, expires)
    VALUES (p_key, p_value, p_create_rev, p_rev, p_expires)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, create_rev = excluded.create_rev,
      mod_rev = excluded.mod_rev, expires = excluded.expires;
  INSERT INTO ${s}.events (rev, type, key, value, create_rev, expires)
    VALUES (p_rev, 'put', p_key, p_value, p_create_rev, p_expires);
$$;

CREATE FUNCTION ${s}.del_item(p_rev bigint, p_key text) RETURNS void LANGUAGE sql ${fn} AS $$
  DELETE FROM ${s}.items WHERE key = p_key;
  INSERT INTO ${s}.events (rev, type, key) VALUES (p_rev, 'delete', p_key);
$$;

-- Deletes up to p_limit expired keys, one delete event each after p_rev; returns the last revision.
-- The caller holds the counter lock.
CREATE FUNCTION ${s}.reap_batch(p_rev bigint, p_now bigint, p_limit integer) RETURNS bigint
LANGUAGE plpgsql ${fn} AS $$
DECLARE
  k text;
BEGIN
  FOR k IN SELECT i.key FROM ${s}.items i WHERE i.expires <= p_now ORDER BY i.expires, i.key LIMIT p_limit LOOP
    p_rev := p_rev + 1;
    PERFORM ${s}.del_item(p_rev, k);
  END LOOP;
  RETURN p_rev;
END $$;

-- Stores the new revision; the notification is delivered at commit (a hint for watchers).
CREATE FUNCTION ${s}.set_rev(p_start bigint, p_rev bigint) RETURNS void LANGUAGE plpgsql ${fn} AS $$
BEGIN
  IF p_rev <> p_start THEN
    UPDATE ${s}.meta SET value = p_rev WHERE name = 'rev';
    PERFORM pg_notify('${n.channel}', p_rev::text);
  END IF;
END $$;

-- One write: op is create, put, cas, delete or delete_range. Status ok, exists, not_found or
-- changed; a failed condition still commits the reaping done before it.
CREATE FUNCTION ${s}.write(
  p_op text, p_key text, p_value bytea, p_expected bigint, p_ttl_ms double precision,
  p_now bigint, p_end text, p_reap integer)
RETURNS TABLE (o_status text, o_rev bigint, o_create_rev bigint, o_expires bigint, o_count bigint,
  o_compacted_rev bigint)
LANGUAGE plpgsql ${fn} AS $$
DECLARE
  v_start bigint;
  v_rev bigint;
  v_now bigint;
  v_prev ${s}.items%ROWTYPE;
  v_found boolean := false;
  k text;
BEGIN
  -- 1. The counter's row lock, held until commit: writers run one at a time, in revision order.
  UPDATE ${s}.meta SET value = value WHERE name = 'rev' RETURNING value INTO v_start;
  v_rev := v_start;
  -- 2. The time, read after the lock.
  v_now := ${s}.db_now(p_now);
  -- 3. Expired keys go first, so the change below sees them as absent.
  v_rev := ${s}.reap_batch(v_rev, v_now, p_reap);
  IF p_op <> 'delete_range' THEN
    SELECT * INTO v_prev FROM ${s}.items WHERE key = p_key;
    v_found := FOUND;
    IF v_found AND v_prev.expires <= v_now THEN
      v_rev := v_rev + 1;
      PERFORM ${s}.del_item(v_rev, p_key);
      v_found := false;
    END IF;
  END IF;
  o_status := 'ok';
  o_count := 0;
  IF p_ttl_ms IS NOT NULL THEN
    o_expires := ceil(v_now + p_ttl_ms)::bigint;
  END IF;
  -- 4. The conditional change.
  IF p_op = 'create' AND v_found THEN
    o_status := 'exists';
  ELSIF p_op IN ('cas', 'delete') AND NOT v_found THEN
    o_status := 'not_found';
  ELSIF p_op IN ('cas', 'delete') AND p_expected IS NOT NULL AND v_prev.mod_rev <> p_expected THEN
    o_status := 'changed';
  ELSIF p_op IN ('create', 'put', 'cas') THEN
    v_rev := v_rev + 1;
    o_create_rev := CASE WHEN v_found THEN v_prev.create_rev ELSE v_rev END;
    PERFORM ${s}.put_item(v_rev, p_key, p_value, o_create_rev, o_expires);
  ELSIF p_op = 'delete' THEN
    v_rev := v_rev + 1;
    PERFORM ${s}.del_item(v_rev, p_key);
    o_count := 1;
  ELSIF p_op = 'delete_range' THEN
    FOR k IN SELECT i.key FROM ${s}.items i
        WHERE i.key >= p_key AND (p_end IS NULL OR i.key < p_end) ORDER BY i.key LOOP
      v_rev := v_rev + 1;
      PERFORM ${s}.del_item(v_rev, k);
      o_count := o_count + 1;
    END LOOP;
  ELSE
    RAISE EXCEPTION 'unknown write operation %', p_op USING ERRCODE = '22023';
  END IF;
  -- 5. The new revision.
  PERFORM ${s}.set_rev(v_start, v_rev);
  o_rev := v_rev;
  SELECT value INTO o_compacted_rev FROM ${s}.meta WHERE name = 'compacted_rev';
  RETURN NEXT;
END $$;

-- The reaper: one replica at a time (advisory lock; p_wait false skips with o_count -1 if
-- another holds it), one batch per call; the caller loops while batches come back full.
CREATE FUNCTION ${s}.reap(p_now bigint, p_limit integer, p_wait boolean)
RETURNS TABLE (o_count bigint, o_rev bigint) LANGUAGE plpgsql ${fn} AS $$
DECLARE
  v_start bigint;
  v_rev bigint;
BEGIN
  o_count := 0;
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(${n.reapLockKey});
  ELSIF NOT pg_try_advisory_xact_lock(${n.reapLockKey}) THEN
    o_count := -1;
    RETURN NEXT;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ${s}.items WHERE expires <= ${s}.db_now(p_now)) THEN
    RETURN NEXT;
    RETURN;
  END IF;
  UPDATE ${s}.meta SET value = value WHERE name = 'rev' RETURNING value INTO v_start;
  v_rev := ${s}.reap_batch(v_start, ${s}.db_now(p_now), p_limit);
  PERFORM ${s}.set_rev(v_start, v_rev);
  o_count := v_rev - v_start;
  o_rev := v_rev;
  RETURN NEXT;
END $$;

-- Drops events with rev <= p_rev. Status ok, or future if p_rev is past the latest revision.
-- Takes only the compacted_rev row's lock: writers are not blocked.
CREATE FUNCTION ${s}.compact(p_rev bigint)
RETURNS TABLE (o_status text, o_head bigint, o_compacted_rev bigint) LANGUAGE plpgsql ${fn} AS $$
BEGIN
  SELECT value INTO o_head FROM ${s}.meta WHERE name = 'rev';
  o_status := CASE WHEN p_rev > o_head THEN 'future' ELSE 'ok' END;
  IF o_status = 'ok' THEN
    UPDATE ${s}.meta SET value = p_rev WHERE name = 'compacted_rev' AND value < p_rev;
    IF FOUND THEN
      DELETE FROM ${s}.events WHERE rev <= p_rev;
    END IF;
  END IF;
  SELECT value INTO o_compacted_rev FROM ${s}.meta WHERE name = 'compacted_rev';
  RETURN NEXT;
END $$;
`;
}

/** The longest event notification sent (PostgreSQL refuses payloads of 8000 bytes or more). */
export const NOTIFY_PAYLOAD_MAX = 7900;

/**
 * Version 2: `set_rev` also notifies `eventChannel` with the transaction's event when it made
 * exactly one that fits in a notification (PostgreSQL's limit is 8000 bytes), so a replica
 * that follows the log needs no read after the notification. The value travels as base64
 * (any bytes, NUL included; PostgreSQL's line breaks in it are ignored by the decoder).
 */
function backendV2(n: BackendSchema): string {
  const s = n.q;
  const fn = 'SET search_path = pg_catalog, pg_temp';
  return `
CREATE OR REPLACE FUNCTION ${s}.set_rev(p_start bigint, p_rev bigint) RETURNS void LANGUAGE plpgsql ${fn} AS $$
DECLARE
  v_payload text;
BEGIN
  IF p_rev <> p_start THEN
    UPDATE ${s}.meta SET value = p_rev WHERE name = 'rev';
    PERFORM pg_notify('${n.channel}', p_rev::text);
    IF p_rev = p_start + 1 THEN
      SELECT json_build_object('rev', e.rev, 'type', e.type, 'key', e.key,
          'value', encode(e.value, 'base64'), 'create_rev', e.create_rev, 'expires', e.expires)::text
        INTO v_payload FROM ${s}.events e WHERE e.rev = p_rev;
    END IF;
    IF v_payload IS NULL OR octet_length(v_payload) > ${NOTIFY_PAYLOAD_MAX} THEN
      v_payload := p_rev::text;
    END IF;
    PERFORM pg_notify('${n.eventChannel}', v_payload);
  END IF;
END $$;
`;
}

/**
 * Version 3: `txn`, several writes to distinct keys in one transaction (`Backend.txn`): the
 * counter's lock, reaping, then every operation's condition (an expired key is absent, its
 * delete event first); if one fails, its index (0-based) and status and no change; else every
 * change in order, one revision each (a delete of an absent key none).
 */
function backendV3(n: BackendSchema): string {
  const s = n.q;
  const fn = 'SET search_path = pg_catalog, pg_temp';
  return `
CREATE FUNCTION ${s}.txn(
  p_types text[], p_keys text[], p_values bytea[], p_expected bigint[], p_ttl_ms double precision[],
  p_now bigint, p_reap integer)
RETURNS TABLE (o_status text, o_index integer, o_rev bigint, o_mod_revs bigint[], o_create_revs bigint[],
  o_expires bigint[], o_done boolean[], o_compacted_rev bigint)
LANGUAGE plpgsql ${fn} AS $$
DECLARE
  v_start bigint;
  v_rev bigint;
  v_now bigint;
  v_prev ${s}.items%ROWTYPE;
  v_found boolean;
  v_create bigint;
  v_exp bigint;
  v_n integer := coalesce(array_length(p_keys, 1), 0);
BEGIN
  UPDATE ${s}.meta SET value = value WHERE name = 'rev' RETURNING value INTO v_start;
  v_rev := v_start;
  v_now := ${s}.db_now(p_now);
  v_rev := ${s}.reap_batch(v_rev, v_now, p_reap);
  o_status := 'ok';
  FOR i IN 1..v_n LOOP
    SELECT * INTO v_prev FROM ${s}.items WHERE key = p_keys[i];
    v_found := FOUND;
    IF v_found AND v_prev.expires <= v_now THEN
      v_rev := v_rev + 1;
      PERFORM ${s}.del_item(v_rev, p_keys[i]);
      v_found := false;
    END IF;
    IF p_types[i] = 'create' AND v_found THEN
      o_status := 'exists';
    ELSIF p_types[i] = 'cas' AND NOT v_found THEN
      o_status := 'not_found';
    ELSIF p_types[i] IN ('cas', 'delete') AND v_found AND p_expected[i] IS NOT NULL
        AND v_prev.mod_rev <> p_expected[i] THEN
      o_status := 'changed';
    ELSIF p_types[i] NOT IN ('create', 'put', 'cas', 'delete') THEN
      RAISE EXCEPTION 'unknown write operation %', p_types[i] USING ERRCODE = '22023';
    END IF;
    IF o_status <> 'ok' THEN
      o_index := i - 1;
      EXIT;
    END IF;
  END LOOP;
  IF o_status = 'ok' THEN
    o_mod_revs := '{}';
    o_create_revs := '{}';
    o_expires := '{}';
    o_done := '{}';
    FOR i IN 1..v_n LOOP
      SELECT * INTO v_prev FROM ${s}.items WHERE key = p_keys[i];
      v_found := FOUND;
      v_create := NULL;
      v_exp := NULL;
      IF p_types[i] = 'delete' THEN
        IF v_found THEN
          v_rev := v_rev + 1;
          PERFORM ${s}.del_item(v_rev, p_keys[i]);
        END IF;
        o_mod_revs := o_mod_revs || NULL::bigint;
        o_done := o_done || v_found;
      ELSE
        v_rev := v_rev + 1;
        v_create := CASE WHEN v_found THEN v_prev.create_rev ELSE v_rev END;
        IF p_ttl_ms[i] IS NOT NULL THEN
          v_exp := ceil(v_now + p_ttl_ms[i])::bigint;
        END IF;
        PERFORM ${s}.put_item(v_rev, p_keys[i], p_values[i], v_create, v_exp);
        o_mod_revs := o_mod_revs || v_rev;
        o_done := o_done || true;
      END IF;
      o_create_revs := o_create_revs || v_create;
      o_expires := o_expires || v_exp;
    END LOOP;
  END IF;
  PERFORM ${s}.set_rev(v_start, v_rev);
  o_rev := v_rev;
  SELECT value INTO o_compacted_rev FROM ${s}.meta WHERE name = 'compacted_rev';
  RETURN NEXT;
END $$;
`;
}

export interface MigrationPlan {
  /** The schema that holds the tables (created if missing). */
  schema: string;
  /** The version table inside it: `(name text primary key, value bigint)`. */
  metaTable: string;
  /** The meta row holding this store's version. */
  versionName: string;
  /** What to call the store in errors ("backend", "audit log"). */
  what: string;
  /** SQL for each version, applied in order from the stored version + 1. */
  steps: readonly string[];
}

/**
 * Creates the schema and migrates it to `steps.length` in one transaction under an advisory
 * lock, so replicas starting at once queue instead of racing; a database already at a newer
 * version is refused. Also refuses a database whose encoding is not UTF-8.
 */
export async function migrateSchema(pool: PostgresPool, plan: MigrationPlan): Promise<void> {
  checkSchemaName(plan.schema);
  const q = `"${plan.schema}"`;
  const lockKey = advisoryKey('migrate', plan.schema);
  await pool.run(`${plan.what} schema migration`, { idempotent: true }, async (client: pg.PoolClient) => {
    const enc = await client.query<{ enc: string }>("SELECT current_setting('server_encoding') AS enc");
    if (enc.rows[0]?.enc !== 'UTF8') {
      throw new WardenError(
        'WARDEN_ERR_BAD_CONFIG',
        `the PostgreSQL database must use UTF8 encoding (it uses ${enc.rows[0]?.enc}); create it with ENCODING 'UTF8'`,
      );
    }
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(${lockKey})`);
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [plan.schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${q}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${q}.${plan.metaTable} (name text NOT NULL PRIMARY KEY, value bigint NOT NULL)`,
      );
      const row = await client.query<{ value: number }>(
        `SELECT value FROM ${q}.${plan.metaTable} WHERE name = $1`,
        [plan.versionName],
      );
      const version = row.rows[0]?.value ?? 0;
      const target = plan.steps.length;
      if (version > target) {
        throw new WardenError(
          'WARDEN_ERR_BAD_CONFIG',
          `the PostgreSQL ${plan.what} schema "${plan.schema}" is at version ${version}, newer than this warden supports (${target}); upgrade warden`,
        );
      }
      for (let v = version + 1; v <= target; v++) await client.query(plan.steps[v - 1]!);
      if (version < target) {
        await client.query(
          `INSERT INTO ${q}.${plan.metaTable} (name, value) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
          [plan.versionName, target],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

/** Migrates the backend's tables and functions in `names.schema`. */
export function migrateBackend(pool: PostgresPool, names: BackendSchema): Promise<void> {
  return migrateSchema(pool, {
    schema: names.schema,
    metaTable: 'meta',
    versionName: 'schema_version',
    what: 'backend',
    steps: [backendV1(names), backendV2(names), backendV3(names)],
  });
}
