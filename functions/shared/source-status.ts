/**
 * What an operator (and the monitor Lambda) needs to know about pgrelay's footprint in one
 * database: the slot and how far behind it is, the publication and which configured tables
 * it lacks, and each table's bootstrap progress. Read-only: a few catalog queries over a
 * connected client, no decisions, no output formatting.
 */
import type { Client } from 'pg';
import { tableKey, type TableName } from '#core/identifiers.ts';
import { readBootstrapRequests, type BootstrapReason, type BootstrapRequest, type BootstrapState } from './bootstrap-state.ts';
import { readSlotWatch, stateSchemaReadable, type SlotWatch } from '#shared/source-state.ts';
import { formatBytes } from '#core/bytes.ts';
import { singleRow } from './single-row.ts';

export interface StatusTarget {
  slotName: string;
  publicationName: string;
  /** Configured tables; the publication's own tables are reported as well. */
  tables: TableName[];
  /** pgrelay's bookkeeping schema; bootstrap progress and the monitor's observations come from it. */
  stateSchema?: string;
}

/** A slot row as PostgreSQL reports it, with the distances pgrelay watches. */
export interface SlotDetails {
  name: string;
  /**
   * `ok`: a logical slot of this database that can stream.
   * `lost`: invalidated (wal_status `lost`, or an invalidation reason): the WAL it needed is gone.
   * `foreign`: the name is taken by a slot pgrelay cannot use here (another database, physical,
   * or another output plugin).
   */
  state: 'ok' | 'lost' | 'foreign';
  slotType: string;
  plugin: string | null;
  database: string | null;
  active: boolean;
  activePid: number | null;
  /** Last position the streamer acknowledged (confirmed_flush_lsn). */
  confirmedFlushLsn: string | null;
  /** Oldest WAL the slot still needs (restart_lsn). */
  restartLsn: string | null;
  /** WAL written since the acknowledged position: currentWalLsn - confirmedFlushLsn. */
  lagBytes: number | null;
  /** WAL kept on disk for this slot: currentWalLsn - restartLsn. */
  retainedWalBytes: number | null;
  /** reserved | extended | unreserved | lost (PostgreSQL 13+); null on older servers. */
  walStatus: string | null;
  /** Bytes that can still be written before the slot is at risk; null when unlimited or unknown. */
  safeWalSizeBytes: number | null;
  /** Why the slot was invalidated (PostgreSQL 17+), e.g. `wal_removed`. */
  invalidationReason: string | null;
}

export type SlotStatus = { name: string; state: 'missing' } | SlotDetails;

export interface PublicationStatus {
  name: string;
  exists: boolean;
  /** FOR ALL TABLES. */
  allTables: boolean;
  /** `schema.table` of every table the publication publishes, sorted. */
  tables: string[];
  /** Configured tables the publication does not publish. */
  missingTables: string[];
}

/**
 * A recorded bootstrap request and its load, as plain data (numbers, ISO strings) with the
 * figures derived from it: how fast it reads and, while it runs, how long it has left.
 */
export interface BootstrapRecord {
  state: BootstrapState;
  reason: BootstrapReason;
  /** One line for people: the state, why it was asked for, since when. */
  detail: string;
  /** For `gap`: changes after the first and before the second position were lost. */
  gapAfterLsn: string | null;
  gapUntilLsn: string | null;
  requestedAt: string;
  requestedBy: string;
  /** The row's last change: a running load records each chunk SQS accepted. */
  updatedAt: string;
  /** What was recorded with the request or its end: why it was asked for, or why it ended. */
  note: string | null;
  /** Why the load failed, when it did (the recorded reason); null otherwise. */
  error: string | null;
  /** The running or last load. */
  loadId: string | null;
  /** The last key (its columns' text values) whose chunk SQS accepted; null before the first. */
  lastKey: string[] | null;
  /** The table's last key when the load started: the load ends there. */
  upperKey: string[] | null;
  rowsRead: number;
  bytesRead: number;
  /** pg_class.reltuples when the load started (an estimate); null when PostgreSQL had none. */
  rowsEstimated: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Seconds from the start to the end (or, while running, to the last recorded chunk); null before the start. */
  elapsedSeconds: number | null;
  /** rowsRead over elapsedSeconds; null before any time has passed. */
  rowsPerSecond: number | null;
  /** rowsRead as a percentage of the estimate; null without one. */
  percentOfEstimate: number | null;
  /** While running: the estimated rows left at rowsPerSecond; null when either is unknown, or reading is past the estimate. */
  etaSeconds: number | null;
}

/**
 * Where the initial load of a table stands: `untracked` when pgrelay's state schema does not
 * exist (the monitor has not run yet) or cannot be read; `not-requested` when nothing asked
 * for it; otherwise the request and its load as recorded.
 */
export type BootstrapProgress = { state: 'untracked'; detail: string } | { state: 'not-requested'; detail: string } | BootstrapRecord;

export const BOOTSTRAP_UNTRACKED: BootstrapProgress = {
  state: 'untracked',
  detail: 'not tracked (no pgrelay state schema yet: the monitor creates it on its first run)',
};

export interface TableStatus {
  /** `schema.table`, unquoted. */
  table: string;
  configured: boolean;
  /** False for a configured table that is not in the database. */
  exists: boolean;
  inPublication: boolean;
  bootstrap: BootstrapProgress;
}

export interface SourceStatus {
  database: string;
  serverVersion: string;
  serverVersionNum: number;
  inRecovery: boolean;
  /** The WAL position lag and retained WAL are measured against (the replay position on a standby). */
  currentWalLsn: string | null;
  slot: SlotStatus;
  publication: PublicationStatus;
  tables: TableStatus[];
  /** What the monitor recorded about the slot, when the state schema exists and has a row for it. */
  watch: SlotWatch | null;
  /** Whether the state schema exists and is readable (false: watch and bootstrap are unknown). */
  stateReadable: boolean;
  /** Seconds the acknowledged position has not moved, per the monitor's observations (null: unknown, or it moved since). */
  lastAckAgeSeconds: number | null;
}

export interface StatusProblem {
  /** `blocked`: pgrelay cannot stream as things are; `warning`: it can, but look. */
  severity: 'blocked' | 'warning';
  message: string;
}

export async function readStatus(client: Client, target: StatusTarget): Promise<SourceStatus> {
  const server = await singleRow<{ version: string; version_num: number; in_recovery: boolean; db: string; now: Date }>(
    client,
    `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS version_num,
            pg_is_in_recovery() AS in_recovery, current_database() AS db, now() AS now`,
  );
  const slot = await readSlotStatus(client, target.slotName, server.version_num, server.db, server.in_recovery);
  const publication = await readPublication(client, target);
  const stateReadable = target.stateSchema !== undefined && (await stateSchemaReadable(client, target.stateSchema));
  const state = stateReadable ? (target.stateSchema as string) : undefined;
  const tables = await readTables(client, target, publication, state);
  const watch = state !== undefined ? ((await readSlotWatch(client, state, target.slotName)) ?? null) : null;
  return {
    database: server.db,
    serverVersion: server.version,
    serverVersionNum: server.version_num,
    inRecovery: server.in_recovery,
    currentWalLsn: slot.currentWalLsn,
    slot: slot.slot,
    publication,
    tables,
    watch,
    stateReadable,
    lastAckAgeSeconds: ackAge(slot.slot, watch, server.now),
  };
}

/**
 * Seconds the acknowledged position has not moved, on the server's clock, as far as the
 * monitor's observations tell: null without them, or when the position moved since the
 * monitor last looked (then it moved less than a monitor interval ago).
 */
function ackAge(slot: SlotStatus, watch: SlotWatch | null, now: Date): number | null {
  if (slot.state === 'missing' || watch === null || watch.confirmedSeenAt === null || watch.confirmedLsn !== slot.confirmedFlushLsn) return null;
  return Math.max(0, Math.round((now.getTime() - watch.confirmedSeenAt.getTime()) / 1000));
}

/**
 * The slot row and the current WAL position in one statement, so lag and retained WAL are
 * differences taken at one instant rather than across two queries with writes between them.
 */
async function readSlotStatus(
  client: Client,
  slotName: string,
  versionNum: number,
  currentDb: string,
  inRecovery: boolean,
): Promise<{ currentWalLsn: string | null; slot: SlotStatus }> {
  const v13 = versionNum >= 130000;
  const v17 = versionNum >= 170000;
  // pg_current_wal_lsn() raises on a standby (which may host logical slots since 16).
  const current = inRecovery ? 'pg_last_wal_replay_lsn()' : 'pg_current_wal_lsn()';
  const row = await singleRow<{
    current_lsn: string | null;
    slot_name: string | null;
    slot_type: string | null;
    plugin: string | null;
    database: string | null;
    active: boolean | null;
    active_pid: number | null;
    confirmed_flush_lsn: string | null;
    restart_lsn: string | null;
    lag_bytes: string | null;
    retained_bytes: string | null;
    wal_status: string | null;
    safe_wal_size: string | null;
    invalidation_reason: string | null;
  }>(
    client,
    `SELECT w.lsn::text AS current_lsn, s.slot_name::text, s.slot_type, s.plugin::text, s.database::text,
            s.active, s.active_pid, s.confirmed_flush_lsn::text, s.restart_lsn::text,
            pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::text AS lag_bytes,
            pg_wal_lsn_diff(w.lsn, s.restart_lsn)::text AS retained_bytes,
            ${v13 ? 's.wal_status' : 'NULL::text'} AS wal_status,
            ${v13 ? 's.safe_wal_size::text' : 'NULL::text'} AS safe_wal_size,
            ${v17 ? 's.invalidation_reason' : 'NULL::text'} AS invalidation_reason
     FROM (SELECT ${current} AS lsn) AS w
     LEFT JOIN pg_replication_slots AS s ON s.slot_name = $1`,
    [slotName],
  );
  if (row.slot_name === null) return { currentWalLsn: row.current_lsn, slot: { name: slotName, state: 'missing' } };
  const lost = row.wal_status === 'lost' || row.invalidation_reason !== null;
  const foreign = row.slot_type !== 'logical' || row.plugin !== 'pgoutput' || row.database !== currentDb;
  return {
    currentWalLsn: row.current_lsn,
    slot: {
      name: slotName,
      state: foreign ? 'foreign' : lost ? 'lost' : 'ok',
      slotType: row.slot_type ?? 'unknown',
      plugin: row.plugin,
      database: row.database,
      active: row.active ?? false,
      activePid: row.active_pid,
      confirmedFlushLsn: row.confirmed_flush_lsn,
      restartLsn: row.restart_lsn,
      lagBytes: toNumber(row.lag_bytes),
      retainedWalBytes: toNumber(row.retained_bytes),
      walStatus: row.wal_status,
      safeWalSizeBytes: toNumber(row.safe_wal_size),
      invalidationReason: row.invalidation_reason,
    },
  };
}

async function readPublication(client: Client, target: StatusTarget): Promise<PublicationStatus> {
  const pub = await client.query<{ puballtables: boolean }>('SELECT puballtables FROM pg_publication WHERE pubname = $1', [target.publicationName]);
  const members = await client.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2',
    [target.publicationName],
  );
  const tables = members.rows.map((r) => `${r.schemaname}.${r.tablename}`);
  const published = new Set(tables);
  return {
    name: target.publicationName,
    exists: pub.rows.length > 0,
    allTables: pub.rows[0]?.puballtables ?? false,
    tables,
    missingTables: target.tables.map(tableKey).filter((t) => !published.has(t)),
  };
}

async function readTables(client: Client, target: StatusTarget, publication: PublicationStatus, stateSchema: string | undefined): Promise<TableStatus[]> {
  const configured = [...new Set(target.tables.map(tableKey))];
  const { rows } = await client.query<{ name: string }>(
    `SELECT n.nspname || '.' || c.relname AS name
     FROM unnest($1::text[], $2::text[]) AS t(schema, tab)
     JOIN pg_namespace n ON n.nspname = t.schema
     JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tab AND c.relkind IN ('r', 'p')`,
    [target.tables.map((t) => t.schema), target.tables.map((t) => t.table)],
  );
  const existing = new Set(rows.map((r) => r.name));
  const published = new Set(publication.tables);
  const names = [...configured, ...publication.tables.filter((t) => !configured.includes(t))];
  const progress = await readBootstrapProgress(client, names, stateSchema, target.slotName);
  return names.map((table) => ({
    table,
    configured: configured.includes(table),
    exists: published.has(table) || existing.has(table),
    inPublication: published.has(table),
    bootstrap: progress.get(table) ?? BOOTSTRAP_UNTRACKED,
  }));
}

/** Bootstrap progress per `schema.table`, from the state schema when there is one. */
export async function readBootstrapProgress(client: Client, tables: string[], stateSchema: string | undefined, slotName: string): Promise<Map<string, BootstrapProgress>> {
  if (stateSchema === undefined) return new Map(tables.map((t) => [t, BOOTSTRAP_UNTRACKED]));
  const requests = await readBootstrapRequests(client, stateSchema, slotName);
  return new Map(
    tables.map((t): [string, BootstrapProgress] => {
      const r = requests.get(t);
      return [t, r === undefined ? { state: 'not-requested', detail: 'not requested' } : bootstrapRecord(r)];
    }),
  );
}

/** A request as plain data, with its rate, share of the estimate and (while running) time left. */
export function bootstrapRecord(r: BootstrapRequest): BootstrapRecord {
  // A running load's figures are as of its last recorded chunk; an ended one's as of its end.
  const until = r.state === 'running' ? r.updatedAt : (r.finishedAt ?? r.updatedAt);
  const elapsedSeconds = r.startedAt === null ? null : Math.max(0, until.getTime() - r.startedAt.getTime()) / 1000;
  const rate = elapsedSeconds !== null && elapsedSeconds > 0 ? r.rowsRead / elapsedSeconds : null;
  const estimate = r.rowsEstimated !== null && r.rowsEstimated > 0 ? r.rowsEstimated : null;
  const left = estimate === null ? null : estimate - r.rowsRead;
  return {
    state: r.state,
    reason: r.reason,
    detail: describeBootstrap(r),
    gapAfterLsn: r.gapAfterLsn,
    gapUntilLsn: r.gapUntilLsn,
    requestedAt: r.requestedAt.toISOString(),
    requestedBy: r.requestedBy,
    updatedAt: r.updatedAt.toISOString(),
    note: r.detail,
    error: r.state === 'failed' ? r.detail : null,
    loadId: r.loadId,
    lastKey: r.lastKey,
    upperKey: r.upperKey,
    rowsRead: r.rowsRead,
    bytesRead: r.bytesRead,
    rowsEstimated: r.rowsEstimated,
    startedAt: r.startedAt?.toISOString() ?? null,
    finishedAt: r.finishedAt?.toISOString() ?? null,
    elapsedSeconds,
    rowsPerSecond: rate === null ? null : Math.round(rate * 100) / 100,
    percentOfEstimate: estimate === null ? null : Math.round((r.rowsRead / estimate) * 1000) / 10,
    etaSeconds: r.state === 'running' && rate !== null && rate > 0 && left !== null && left > 0 ? Math.ceil(left / rate) : null,
  };
}

function describeBootstrap(r: BootstrapRequest): string {
  const why =
    r.reason === 'gap'
      ? `to repair changes lost after ${r.gapAfterLsn ?? '?'} and before ${r.gapUntilLsn ?? '?'}`
      : r.reason === 'initial'
        ? 'initial load'
        : 'asked for by an operator';
  return `${r.state} (${why}; since ${r.requestedAt.toISOString()})`;
}

/** What is wrong or worth a look, each as one sentence with the fix. */
export function statusProblems(status: SourceStatus): StatusProblem[] {
  const problems: StatusProblem[] = [];
  const { slot, publication } = status;
  if (slot.state === 'missing' && status.watch !== null) {
    problems.push({
      severity: 'blocked',
      message: `replication slot ${slot.name} was dropped after pgrelay's monitor saw it (acknowledged up to ${status.watch.confirmedLsn ?? '?'}): changes since were lost; the monitor recreates it with recreateLostSlot on, or accept the gap with pgrelay slot drop`,
    });
  } else if (slot.state === 'missing') {
    problems.push({
      severity: 'blocked',
      message: `replication slot ${slot.name} does not exist in ${status.database}: start the streamer to create it (changes committed before then are not streamed), or pass the right --slot`,
    });
  } else if (slot.state === 'foreign') {
    const what = slot.database !== status.database ? `belongs to database ${slot.database ?? '(none: a physical slot)'}` : `is ${slot.slotType}/${slot.plugin ?? 'no plugin'}, not logical/pgoutput`;
    problems.push({ severity: 'blocked', message: `replication slot ${slot.name} ${what}, so pgrelay cannot use it here: pick another slot name (--slot, or slotName in the config)` });
  } else if (slot.state === 'lost') {
    problems.push({
      severity: 'blocked',
      message: `replication slot ${slot.name} was invalidated (${slot.invalidationReason ?? `wal_status ${slot.walStatus ?? 'lost'}`}): the WAL it needed is gone and changes were lost; drop it (pgrelay slot drop) and bootstrap the tables again`,
    });
  } else {
    if (slot.walStatus === 'unreserved') {
      problems.push({
        severity: 'warning',
        message: `replication slot ${slot.name} is about to lose WAL it needs (wal_status unreserved${slot.safeWalSizeBytes !== null ? `, ${formatBytes(slot.safeWalSizeBytes)} left` : ''}): get the streamer running and caught up, or raise max_slot_wal_keep_size`,
      });
    }
    if (!slot.active) {
      problems.push({
        severity: 'warning',
        message: `no streamer is connected to replication slot ${slot.name}: PostgreSQL keeps WAL for it meanwhile${slot.retainedWalBytes !== null ? ` (${formatBytes(slot.retainedWalBytes)} so far)` : ''}; start the streamer or drop the slot`,
      });
    }
  }
  if (!publication.exists) {
    problems.push({ severity: 'warning', message: `publication ${publication.name} does not exist: the streamer creates it at start (managePublication), or create it with CREATE PUBLICATION` });
  } else if (publication.missingTables.length > 0) {
    problems.push({
      severity: 'warning',
      message: `publication ${publication.name} lacks ${publication.missingTables.join(', ')}: the streamer adds them at start (managePublication), or add them with ALTER PUBLICATION ... ADD TABLE`,
    });
  }
  for (const t of status.tables) {
    if (t.configured && !t.exists) problems.push({ severity: 'warning', message: `configured table ${t.table} does not exist (names are case-sensitive; quote mixed-case names: "Schema"."Table")` });
    if (t.bootstrap.state === 'failed') {
      problems.push({ severity: 'warning', message: `the bootstrap of ${t.table} failed: ${t.bootstrap.error ?? 'no reason recorded'}; fix the cause and request it again with pgrelay bootstrap ${t.table}` });
    }
  }
  return problems;
}

function toNumber(text: string | null): number | null {
  return text === null ? null : Number(text);
}
