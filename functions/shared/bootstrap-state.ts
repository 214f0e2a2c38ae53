/**
 * Bootstrap requests and their progress, in the state schema's `bootstrap` table (one row per
 * slot and table; source-state.ts creates it). The monitor and `pgrelay bootstrap` request
 * loads; the streamer claims them, records progress only after SQS accepted a chunk, and ends
 * them; `pgrelay status` and the monitor read them.
 *
 * A row's life: requested → running → done | failed | cancelled. A new request (gap,
 * operator) replaces a finished row; `initial` never replaces anything.
 */
import type { Client } from 'pg';
import { stateNames } from './source-state.ts';

export const bootstrapStates = ['requested', 'running', 'done', 'failed', 'cancelled'] as const;
export type BootstrapState = (typeof bootstrapStates)[number];

/**
 * Why a table is (re)loaded: `initial` (never loaded since pgrelay started watching it),
 * `gap` (the slot was lost and recreated: changes in a WAL range were never streamed, and the
 * re-read repairs them), `operator` (asked for with `pgrelay bootstrap`).
 */
export type BootstrapReason = 'initial' | 'gap' | 'operator';

export interface BootstrapRequest {
  /** `schema.table`, unquoted. */
  table: string;
  state: BootstrapState;
  reason: BootstrapReason;
  /** For `gap`: changes after the first and before the second position were lost. */
  gapAfterLsn: string | null;
  gapUntilLsn: string | null;
  requestedAt: Date;
  /** requested_at to the microsecond (a Date keeps milliseconds): tells one request from the one that replaced it. */
  requestStamp: string;
  requestedBy: string;
  updatedAt: Date;
  /** Why it was requested, or why it failed. */
  detail: string | null;
  /** The running or last load. */
  loadId: string | null;
  /** The last key (its columns' text values) whose chunk SQS accepted; null before the first. */
  lastKey: string[] | null;
  /** The table's last key when the load started: the load ends there (later rows arrive live). */
  upperKey: string[] | null;
  rowsRead: number;
  bytesRead: number;
  /** pg_class.reltuples at the start (an estimate; null when PostgreSQL has none). */
  rowsEstimated: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

interface RequestRow {
  table_name: string;
  state: BootstrapState;
  reason: BootstrapReason;
  gap_after_lsn: string | null;
  gap_until_lsn: string | null;
  requested_at: Date;
  request_stamp: string;
  requested_by: string;
  updated_at: Date;
  detail: string | null;
  load_id: string | null;
  last_key: string[] | null;
  upper_key: string[] | null;
  rows_read: string;
  bytes_read: string;
  rows_estimated: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

const REQUEST_COLUMNS = `table_name, state, reason, gap_after_lsn::text, gap_until_lsn::text, requested_at,
  to_char(requested_at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS.US') AS request_stamp, requested_by, updated_at, detail,
  load_id, last_key, upper_key, rows_read::text, bytes_read::text, rows_estimated::text, started_at, finished_at`;

function requestFromRow(r: RequestRow): BootstrapRequest {
  return {
    table: r.table_name,
    state: r.state,
    reason: r.reason,
    gapAfterLsn: r.gap_after_lsn,
    gapUntilLsn: r.gap_until_lsn,
    requestedAt: r.requested_at,
    requestStamp: r.request_stamp,
    requestedBy: r.requested_by,
    updatedAt: r.updated_at,
    detail: r.detail,
    loadId: r.load_id,
    lastKey: r.last_key,
    upperKey: r.upper_key,
    rowsRead: Number(r.rows_read),
    bytesRead: Number(r.bytes_read),
    rowsEstimated: r.rows_estimated === null ? null : Number(r.rows_estimated),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export async function readBootstrapRequests(client: Client, schema: string, slotName: string): Promise<Map<string, BootstrapRequest>> {
  const { rows } = await client.query<RequestRow>(`SELECT ${REQUEST_COLUMNS} FROM ${stateNames(schema).bootstrap} WHERE slot_name = $1 ORDER BY table_name`, [slotName]);
  return new Map(rows.map((r) => [r.table_name, requestFromRow(r)]));
}

/**
 * Asks for tables to be loaded. An `initial` request never replaces an existing row (a table
 * loaded or being loaded is left alone); a `gap` or `operator` request replaces whatever is
 * there, because what was loaded before no longer covers what was lost: a load under way
 * starts over. Returns the tables whose row was written.
 */
export async function requestBootstrap(
  client: Client,
  schema: string,
  slotName: string,
  tables: string[],
  request: { reason: BootstrapReason; by: string; gapAfterLsn?: string | null; gapUntilLsn?: string | null; detail?: string },
): Promise<string[]> {
  if (tables.length === 0) return [];
  const conflict =
    request.reason === 'initial'
      ? 'DO NOTHING'
      : `DO UPDATE SET state = 'requested', reason = EXCLUDED.reason, gap_after_lsn = EXCLUDED.gap_after_lsn, gap_until_lsn = EXCLUDED.gap_until_lsn,
           requested_at = EXCLUDED.requested_at, requested_by = EXCLUDED.requested_by, updated_at = EXCLUDED.updated_at, detail = EXCLUDED.detail,
           load_id = NULL, last_key = NULL, upper_key = NULL, rows_read = 0, bytes_read = 0, rows_estimated = NULL, started_at = NULL, finished_at = NULL`;
  const { rows } = await client.query<{ table_name: string }>(
    `INSERT INTO ${stateNames(schema).bootstrap} (slot_name, table_name, state, reason, gap_after_lsn, gap_until_lsn, requested_by, detail)
     SELECT $1, t, 'requested', $3, $4::pg_lsn, $5::pg_lsn, $6, $7 FROM unnest($2::text[]) AS t
     ON CONFLICT (slot_name, table_name) ${conflict}
     RETURNING table_name`,
    [slotName, tables, request.reason, request.gapAfterLsn ?? null, request.gapUntilLsn ?? null, request.by, request.detail ?? null],
  );
  return rows.map((r) => r.table_name).sort();
}

/** Requests the streamer should work on: requested, and running (a load it resumes after a restart). */
export async function readOpenBootstraps(client: Client, schema: string, slotName: string): Promise<BootstrapRequest[]> {
  const { rows } = await client.query<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM ${stateNames(schema).bootstrap} WHERE slot_name = $1 AND state IN ('requested', 'running') ORDER BY requested_at, table_name`,
    [slotName],
  );
  return rows.map(requestFromRow);
}

/**
 * Starts a requested load: it gets its id, its bounds and its estimate. False when the row is
 * no longer `requested` (cancelled or replaced meanwhile).
 */
export async function startBootstrap(
  client: Client,
  schema: string,
  slotName: string,
  table: string,
  load: { id: string; upperKey: string[] | null; rowsEstimated: number | null; requestStamp: string },
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE ${stateNames(schema).bootstrap}
        SET state = 'running', load_id = $3, upper_key = $4, rows_estimated = $5, last_key = NULL, rows_read = 0, bytes_read = 0,
            started_at = now(), finished_at = NULL, updated_at = now()
      WHERE slot_name = $1 AND table_name = $2 AND state = 'requested'
        AND to_char(requested_at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS.US') = $6`,
    [slotName, table, load.id, load.upperKey, load.rowsEstimated, load.requestStamp],
  );
  return rowCount === 1;
}

/** Records a chunk SQS accepted. False when the load is no longer the running one (cancelled, replaced). */
export async function recordBootstrapProgress(
  client: Client,
  schema: string,
  slotName: string,
  table: string,
  progress: { loadId: string; lastKey: string[] | null; rows: number; bytes: number },
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE ${stateNames(schema).bootstrap}
        SET last_key = COALESCE($4, last_key), rows_read = rows_read + $5, bytes_read = bytes_read + $6, updated_at = now()
      WHERE slot_name = $1 AND table_name = $2 AND load_id = $3 AND state = 'running'`,
    [slotName, table, progress.loadId, progress.lastKey, progress.rows, progress.bytes],
  );
  return rowCount === 1;
}

/** Ends a load: done (every row read and accepted), failed (with the reason) or cancelled. */
export async function finishBootstrap(
  client: Client,
  schema: string,
  slotName: string,
  table: string,
  end: { loadId: string; state: 'done' | 'failed' | 'cancelled'; detail?: string },
): Promise<void> {
  await client.query(
    `UPDATE ${stateNames(schema).bootstrap}
        SET state = $4, detail = COALESCE($5, detail), finished_at = now(), updated_at = now()
      WHERE slot_name = $1 AND table_name = $2 AND load_id = $3 AND state IN ('running', 'cancelled')`,
    [slotName, table, end.loadId, end.state, end.detail ?? null],
  );
}

/** Fails a request that never started (its table is gone or not streamed). */
export async function failBootstrapRequest(client: Client, schema: string, slotName: string, table: string, detail: string): Promise<void> {
  await client.query(
    `UPDATE ${stateNames(schema).bootstrap} SET state = 'failed', detail = $3, finished_at = now(), updated_at = now()
      WHERE slot_name = $1 AND table_name = $2 AND state = 'requested'`,
    [slotName, table, detail],
  );
}

/** Starts a running load over from its first key (a TRUNCATE of the table during it). */
export async function restartBootstrap(client: Client, schema: string, slotName: string, table: string, loadId: string, upperKey: string[] | null): Promise<void> {
  await client.query(
    `UPDATE ${stateNames(schema).bootstrap} SET last_key = NULL, upper_key = $4, rows_read = 0, bytes_read = 0, updated_at = now()
      WHERE slot_name = $1 AND table_name = $2 AND load_id = $3 AND state = 'running'`,
    [slotName, table, loadId, upperKey],
  );
}

/** `pgrelay bootstrap --cancel`: a requested or running load stops (the streamer sees it before its next chunk). Returns the state it had. */
export async function cancelBootstrap(client: Client, schema: string, slotName: string, table: string): Promise<BootstrapState | undefined> {
  const { rows } = await client.query<{ previous: BootstrapState }>(
    `UPDATE ${stateNames(schema).bootstrap} b SET state = 'cancelled', detail = 'cancelled by an operator', updated_at = now(),
            finished_at = CASE WHEN b.state = 'requested' THEN now() ELSE b.finished_at END
       FROM (SELECT state FROM ${stateNames(schema).bootstrap} WHERE slot_name = $1 AND table_name = $2 FOR UPDATE) AS old
      WHERE b.slot_name = $1 AND b.table_name = $2 AND b.state IN ('requested', 'running')
      RETURNING old.state AS previous`,
    [slotName, table],
  );
  return rows[0]?.previous;
}
