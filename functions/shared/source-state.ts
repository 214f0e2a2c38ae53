/**
 * pgrelay's own bookkeeping in the source database: a small schema (default `pgrelay`) that
 * the monitor creates and the streamer and `pgrelay status` read. It lives next to the data
 * because what it records is about that database's WAL: which slot pgrelay has seen (so a slot
 * dropped by someone is noticed instead of silently re-created with a gap), what the monitor
 * observed last run (a Lambda remembers nothing between runs), and which tables still need
 * their initial load. Rows are keyed by slot, so several sources can share one database.
 *
 * None of these tables is published: writing them never produces change events.
 */
import type { Client } from 'pg';
import { SourceError } from '#core/errors.ts';
import { quoteIdent } from '#core/identifiers.ts';

/** What the monitor knows about one slot, carried from run to run. */
export interface SlotWatch {
  slotName: string;
  /** Bumped each time the slot is recreated after a loss. */
  generation: number;
  /** When pgrelay first saw this slot (this generation). */
  registeredAt: Date;
  /** confirmed_flush_lsn at the last run, and when the monitor first saw that value. */
  confirmedLsn: string | null;
  confirmedSeenAt: Date | null;
  /** First run that found the slot inactive; null while a streamer is connected. */
  inactiveSince: Date | null;
  /** Last heartbeat the monitor wrote into the WAL. */
  heartbeatLsn: string | null;
  heartbeatAt: Date | null;
  /** Last time the monitor stopped the streamer task, and why (the cool-down counts from it). */
  lastStopAt: Date | null;
  lastStopReason: string | null;
  /** When the slot was found lost or dropped, and the last position acknowledged before. */
  lostAt: Date | null;
  lostAfterLsn: string | null;
  /** The last repair: changes after gapAfterLsn and before gapUntilLsn were not streamed. */
  recreatedAt: Date | null;
  gapAfterLsn: string | null;
  gapUntilLsn: string | null;
}

/**
 * What a load records as it goes (added to the bootstrap table by migrateBootstrapTable where
 * the table predates them): the load's id, where it is (the last key whose chunk SQS accepted,
 * as the key columns' text values, and the last key at the start, which bounds the load), rows
 * and bytes so far, the estimate from pg_class.reltuples, and when it started and finished.
 */
const BOOTSTRAP_PROGRESS_COLUMNS = [
  'load_id text',
  'last_key text[]',
  'upper_key text[]',
  'rows_read bigint NOT NULL DEFAULT 0',
  'bytes_read bigint NOT NULL DEFAULT 0',
  'rows_estimated bigint',
  'started_at timestamptz',
  'finished_at timestamptz',
];

/** Brings a bootstrap table made by an earlier release up to date; does nothing (one catalog query) when it is. */
async function migrateBootstrapTable(client: Client, schema: string): Promise<void> {
  const n = stateNames(schema);
  const { rows } = await client.query<{ current: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'load_id' AND NOT attisdropped) AS current`,
    [`${n.schema}.bootstrap`],
  );
  if (rows[0]?.current) return;
  await client.query(`ALTER TABLE ${n.bootstrap} ${BOOTSTRAP_PROGRESS_COLUMNS.map((c) => `ADD COLUMN IF NOT EXISTS ${c}`).join(', ')},
    DROP CONSTRAINT IF EXISTS bootstrap_state_check,
    ADD CONSTRAINT bootstrap_state_check CHECK (state IN ('requested', 'running', 'done', 'failed', 'cancelled'))`);
}

export const DEFAULT_STATE_SCHEMA = 'pgrelay';

/** The quoted names of the state schema's objects. */
export function stateNames(schema: string) {
  const s = quoteIdent(schema);
  return { schema: s, watch: `${s}.slot_watch`, bootstrap: `${s}.bootstrap` };
}

/**
 * Creates the schema and its tables when missing (idempotent, safe to run every time).
 * Needs CREATE on the database the first time, or a schema made for the user beforehand.
 * Only what is missing is created: PostgreSQL checks the privilege to create before it looks
 * whether the object exists, so `CREATE SCHEMA IF NOT EXISTS` fails for a user the schema was
 * made for (CREATE SCHEMA ... AUTHORIZATION) who has no CREATE on the database.
 */
export async function ensureStateSchema(client: Client, schema: string): Promise<void> {
  const n = stateNames(schema);
  const ddl = [
    { exists: n.schema, sql: `CREATE SCHEMA IF NOT EXISTS ${n.schema}` },
    { exists: n.watch, sql: `CREATE TABLE IF NOT EXISTS ${n.watch} (
       slot_name text PRIMARY KEY,
       generation integer NOT NULL DEFAULT 1,
       registered_at timestamptz NOT NULL DEFAULT now(),
       confirmed_lsn pg_lsn,
       confirmed_seen_at timestamptz,
       inactive_since timestamptz,
       heartbeat_lsn pg_lsn,
       heartbeat_at timestamptz,
       last_stop_at timestamptz,
       last_stop_reason text,
       lost_at timestamptz,
       lost_after_lsn pg_lsn,
       recreated_at timestamptz,
       gap_after_lsn pg_lsn,
       gap_until_lsn pg_lsn
     )` },
    { exists: n.bootstrap, sql: `CREATE TABLE IF NOT EXISTS ${n.bootstrap} (
       slot_name text NOT NULL,
       table_name text NOT NULL,
       state text NOT NULL CHECK (state IN ('requested', 'running', 'done', 'failed', 'cancelled')),
       reason text NOT NULL CHECK (reason IN ('initial', 'gap', 'operator')),
       gap_after_lsn pg_lsn,
       gap_until_lsn pg_lsn,
       requested_at timestamptz NOT NULL DEFAULT now(),
       requested_by text NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT now(),
       detail text,
       ${BOOTSTRAP_PROGRESS_COLUMNS.join(',\n       ')},
       PRIMARY KEY (slot_name, table_name)
     )` },
  ];
  for (let attempt = 1; ; attempt++) {
    try {
      const { rows } = await client.query<{ present: boolean[] }>(
        `SELECT ARRAY[to_regnamespace($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL] AS present`,
        ddl.map((d) => d.exists),
      );
      for (const [i, d] of ddl.entries()) if (rows[0]?.present[i] !== true) await client.query(d.sql);
      await migrateBootstrapTable(client, schema);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Two first runs at once can collide on the catalog's unique index; the second try sees the winner's objects.
      if ((code === '23505' || code === '42P07') && attempt === 1) continue;
      if (code === '42501') {
        throw new SourceError(
          'PRIVILEGE',
          `cannot create pgrelay's state schema ${schema}: ${(err as Error).message}; have an administrator run: CREATE SCHEMA ${n.schema} AUTHORIZATION <pgrelay user> (or GRANT CREATE ON DATABASE <database> TO <pgrelay user>)`,
          { cause: err },
        );
      }
      throw err;
    }
  }
}

/** Whether the state tables exist and this user may read them. */
export async function stateSchemaReadable(client: Client, schema: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL
            AND has_table_privilege(to_regclass($1), 'SELECT') AND has_table_privilege(to_regclass($2), 'SELECT') AS ok`,
    [`${quoteIdent(schema)}.slot_watch`, `${quoteIdent(schema)}.bootstrap`],
  );
  return rows[0]?.ok === true;
}

interface WatchRowText {
  slot_name: string;
  generation: number;
  registered_at: Date;
  confirmed_lsn: string | null;
  confirmed_seen_at: Date | null;
  inactive_since: Date | null;
  heartbeat_lsn: string | null;
  heartbeat_at: Date | null;
  last_stop_at: Date | null;
  last_stop_reason: string | null;
  lost_at: Date | null;
  lost_after_lsn: string | null;
  recreated_at: Date | null;
  gap_after_lsn: string | null;
  gap_until_lsn: string | null;
}

const WATCH_COLUMNS = `slot_name, generation, registered_at, confirmed_lsn::text, confirmed_seen_at, inactive_since,
  heartbeat_lsn::text, heartbeat_at, last_stop_at, last_stop_reason, lost_at, lost_after_lsn::text,
  recreated_at, gap_after_lsn::text, gap_until_lsn::text`;

function watchFromRow(r: WatchRowText): SlotWatch {
  return {
    slotName: r.slot_name,
    generation: r.generation,
    registeredAt: r.registered_at,
    confirmedLsn: r.confirmed_lsn,
    confirmedSeenAt: r.confirmed_seen_at,
    inactiveSince: r.inactive_since,
    heartbeatLsn: r.heartbeat_lsn,
    heartbeatAt: r.heartbeat_at,
    lastStopAt: r.last_stop_at,
    lastStopReason: r.last_stop_reason,
    lostAt: r.lost_at,
    lostAfterLsn: r.lost_after_lsn,
    recreatedAt: r.recreated_at,
    gapAfterLsn: r.gap_after_lsn,
    gapUntilLsn: r.gap_until_lsn,
  };
}

/** The slot's watch row; `forUpdate` locks it for the rest of the caller's transaction. */
export async function readSlotWatch(client: Client, schema: string, slotName: string, opts: { forUpdate?: boolean } = {}): Promise<SlotWatch | undefined> {
  const { rows } = await client.query<WatchRowText>(
    `SELECT ${WATCH_COLUMNS} FROM ${stateNames(schema).watch} WHERE slot_name = $1${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [slotName],
  );
  return rows[0] ? watchFromRow(rows[0]) : undefined;
}

/** Inserts or replaces the slot's watch row. */
export async function writeSlotWatch(client: Client, schema: string, w: SlotWatch): Promise<void> {
  await client.query(
    `INSERT INTO ${stateNames(schema).watch} (slot_name, generation, registered_at, confirmed_lsn, confirmed_seen_at, inactive_since,
       heartbeat_lsn, heartbeat_at, last_stop_at, last_stop_reason, lost_at, lost_after_lsn, recreated_at, gap_after_lsn, gap_until_lsn)
     VALUES ($1, $2, $3, $4::pg_lsn, $5, $6, $7::pg_lsn, $8, $9, $10, $11, $12::pg_lsn, $13, $14::pg_lsn, $15::pg_lsn)
     ON CONFLICT (slot_name) DO UPDATE SET
       generation = EXCLUDED.generation, registered_at = EXCLUDED.registered_at, confirmed_lsn = EXCLUDED.confirmed_lsn,
       confirmed_seen_at = EXCLUDED.confirmed_seen_at, inactive_since = EXCLUDED.inactive_since,
       heartbeat_lsn = EXCLUDED.heartbeat_lsn, heartbeat_at = EXCLUDED.heartbeat_at, last_stop_at = EXCLUDED.last_stop_at,
       last_stop_reason = EXCLUDED.last_stop_reason, lost_at = EXCLUDED.lost_at, lost_after_lsn = EXCLUDED.lost_after_lsn,
       recreated_at = EXCLUDED.recreated_at, gap_after_lsn = EXCLUDED.gap_after_lsn, gap_until_lsn = EXCLUDED.gap_until_lsn`,
    [
      w.slotName,
      w.generation,
      w.registeredAt,
      w.confirmedLsn,
      w.confirmedSeenAt,
      w.inactiveSince,
      w.heartbeatLsn,
      w.heartbeatAt,
      w.lastStopAt,
      w.lastStopReason,
      w.lostAt,
      w.lostAfterLsn,
      w.recreatedAt,
      w.gapAfterLsn,
      w.gapUntilLsn,
    ],
  );
}

/** Forget a slot (an operator dropped it on purpose): its watch row and its bootstrap rows. */
export async function forgetSlot(client: Client, schema: string, slotName: string): Promise<void> {
  const n = stateNames(schema);
  await client.query(`DELETE FROM ${n.watch} WHERE slot_name = $1`, [slotName]);
  await client.query(`DELETE FROM ${n.bootstrap} WHERE slot_name = $1`, [slotName]);
}
